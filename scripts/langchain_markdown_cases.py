#!/usr/bin/env python3
"""Expected chunks for llm-rag's Markdown-header splitter test, from LangChain itself.

  pip install langchain-text-splitters==1.1.3
  python scripts/langchain_markdown_cases.py > llm-rag/tests/data/langchain_markdown.json

MarkdownHeaderTextSplitter(headers_to_split_on=[("#", "h1"), ("##", "h2"), ("###", "h3")]) with
strip_headers True and False; return_each_line False.
"""
import json
import sys

from langchain_text_splitters import MarkdownHeaderTextSplitter

TEXTS = {
    "nested": "# Guide\n\nIntro line.\n\n## Install\nRun the script.\nThen build.\n\n## Use\n### CPU\nFlex runs everywhere.\n\n### GPU\nCUDA or WGPU.\n\n# Appendix\nMore text.",
    "code": "# Code\n\n```sh\n# not a header\ncargo test\n```\n\nAfter the block.\n\n## Next\n~~~\n## also not a header\n~~~\nDone.",
    "no_headers": "Just text\nover two lines.\n\nAnd a paragraph.",
    "skip_level": "Preamble.\n### Deep first\nDeep text.\n# Top\nTop text.\n##NoSpace is text\n## Real\nReal text.",
}
HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
cases = []
for name, text in TEXTS.items():
    for strip in (True, False):
        docs = MarkdownHeaderTextSplitter(headers_to_split_on=HEADERS, strip_headers=strip).split_text(text)
        cases.append({"text": name, "strip_headers": strip,
                      "chunks": [{"content": d.page_content, "metadata": d.metadata} for d in docs]})
json.dump({"generator": "langchain-text-splitters 1.1.3", "headers": HEADERS, "texts": TEXTS, "cases": cases},
          sys.stdout, indent=1, ensure_ascii=False)
