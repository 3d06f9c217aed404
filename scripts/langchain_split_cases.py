#!/usr/bin/env python3
"""Expected chunks for llm-rag's recursive splitter test, from LangChain itself.

  pip install langchain-text-splitters==1.1.3
  python scripts/langchain_split_cases.py > llm-rag/tests/data/langchain_recursive.json

RecursiveCharacterTextSplitter with its defaults (separators ["\\n\\n", "\\n", " ", ""],
keep_separator=True, strip_whitespace=True, length = characters), add_start_index=True;
start_byte is LangChain's character start_index converted to a UTF-8 byte offset.
"""
import json
import sys

from langchain_text_splitters import RecursiveCharacterTextSplitter

TEXTS = {
    "paragraphs": "Burn is a deep learning framework.\n\nIt keeps the backend generic, so the same model runs on a CPU, "
                  "on Vulkan through WGPU, and on CUDA.\n\nShort.\nA line that goes on and on without any paragraph "
                  "break but with plenty of spaces between its many words.",
    "long_word": "tiny words then Supercalifragilisticexpialidociouslylongwordthatneverends and more",
    "unicode": "Café crème brûlée. Naïve façade — déjà vu.\n\nÜber straße größe ähnlich, schöne Grüße aus München!",
    "whitespace": "  leading spaces\n\n\n\nmany blank lines   \n\n   trailing  ",
}

cases = []
for name, text in TEXTS.items():
    for size, overlap in [(40, 10), (25, 0), (60, 20)]:
        docs = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, add_start_index=True).create_documents([text])
        cases.append({
            "text": name, "chunk_size": size, "chunk_overlap": overlap,
            "chunks": [d.page_content for d in docs],
            "start_byte": [len(text[: d.metadata["start_index"]].encode()) for d in docs],
        })
json.dump({"generator": "langchain-text-splitters 1.1.3", "texts": TEXTS, "cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
