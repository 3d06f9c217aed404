"""Writes the loader tests' PDFs by hand (no PDF library needed): a 2-page text PDF with the
standard Helvetica font, a PDF whose only page is a drawn line (no text layer), and a corrupt
one. Run from this folder: `python3 make_pdfs.py`."""


def pdf(pages):
    """A minimal PDF 1.4: catalog, page tree, one Helvetica font, one content stream per page."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, content in enumerate(pages):
        contents = 5 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>".encode()
        )
        data = content.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_page(lines):
    shown = " T* ".join(f"({line}) Tj" for line in lines)
    return f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET"


two_pages = pdf([
    text_page(["Page one: retrieval starts here.", "Second line of page one."]),
    text_page(["Page two ends the document."]),
])
with open("two_pages.pdf", "wb") as f:
    f.write(two_pages)
with open("dir/sub/two.pdf", "wb") as f:
    f.write(two_pages)
with open("no_text.pdf", "wb") as f:
    f.write(pdf(["72 72 m 540 720 l S"]))
with open("corrupt.pdf", "wb") as f:
    f.write(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis file was cut off")
with open("dir/sub/broken.pdf", "wb") as f:
    f.write(b"%PDF-1.4\nnot really a PDF\n")
