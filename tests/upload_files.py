"""Real files for the upload tests, built at test time: a docx with a table (python-docx), a
multi-page PDF with a text layer, and hostile ones (encrypted, scanned, corrupt, zip bomb...)."""
from __future__ import annotations

import datetime as dt
import io
import zipfile

DOCX_TITLE = "烟台海洋牧场建设情况通报"
DOCX_DATE = "2022-03-15"
DOCX_PARAGRAPHS = [
    "截至目前，烟台已建成国家级海洋牧场示范区22处，约占全国总数的六分之一，数量居全国地级市首位。",
    "海洋牧场带动休闲渔业、海工装备和水产品精深加工，综合产值达到180亿元，带动渔民转产就业两万余人。",
    "下一步将推广深远海智能养殖网箱和养殖工船，推动海洋牧场由近岸向深远海拓展。",
]
DOCX_TABLE = [("区市", "国家级示范区（处）"), ("长岛", "8"), ("莱州", "4"), ("海阳", "3")]
DOCX_QUESTION = "烟台建成了多少处国家级海洋牧场示范区"

PDF_TITLE = "烟台冷链物流发展规划"
PDF_DATE = "2023-06-01"
PDF_PAGES = [
    ["Cold Chain Logistics Development Plan",
     "The plan builds a modern cold chain network for fruit, seafood and wine.",
     "Refrigerated trucks will be tracked on one public temperature platform."],
    ["Storage capacity",
     "The plan will build 35 new cold storage warehouses,",
     "adding a total capacity of 1.2 million tonnes of refrigerated storage.",
     "Each warehouse must report its temperature records every hour."],
]
PDF_QUESTION = "How many new cold storage warehouses will the cold chain plan build?"


def docx_with_table(title: str = DOCX_TITLE, created: dt.datetime | None = dt.datetime(2022, 3, 15, 9, 0),
                    paragraphs: list[str] = DOCX_PARAGRAPHS) -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.title = title
    if created:
        d.core_properties.created = created
    d.add_heading(title, level=1)
    for p in paragraphs:
        d.add_paragraph(p)
    table = d.add_table(rows=len(DOCX_TABLE), cols=2)
    for r, row in enumerate(DOCX_TABLE):
        for c, cell in enumerate(row):
            table.cell(r, c).text = cell
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def _escape_pdf(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(pages: list[list[str]] = PDF_PAGES, title: str | None = None) -> bytes:
    """A hand-written PDF, one page per list of ASCII lines (Helvetica text layer); a page given
    as [] carries only a drawn rectangle, like a scan without text."""
    n = len(pages)
    font_obj = 3 + 2 * n
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>"]
    for i, lines in enumerate(pages):
        if lines:
            stream = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({_escape_pdf(s)}) Tj T*" for s in lines) + " ET"
        else:
            stream = "0.5 g 72 72 468 648 re f"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 {font_obj} 0 R >> >> /Contents {4 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = None
    if title:
        objects.append(f"<< /Title ({_escape_pdf(title)}) /CreationDate (D:20230601120000) >>")
        info = len(objects)
    out, offsets = b"%PDF-1.4\n", []
    for k, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n{body}\nendobj\n".encode("ascii")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode("ascii")
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode("ascii")
    return out


def encrypted_pdf(password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf())).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_pdf() -> bytes:
    return pdf([[], []])


def corrupt_pdf() -> bytes:
    return b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def executable() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + bytes(range(256)) * 4


def zip_bomb_docx(unpacked_mb: int) -> bytes:
    """A real docx plus a member of zeros that expands to `unpacked_mb` MB (~KBs packed)."""
    src = zipfile.ZipFile(io.BytesIO(docx_with_table(title="膨胀文档")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            z.writestr(item, src.read(item))
        z.writestr("word/media/padding.bin", b"\x00" * (unpacked_mb * 2**20))
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("notes.txt", "不是 Word 文档")
    return out.getvalue()


def corrupt_docx() -> bytes:
    return b"PK\x03\x04" + bytes(range(256)) * 4


def ole_file() -> bytes:
    """An encrypted Office file (or a legacy .doc) is an OLE compound file, not a zip."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + bytes(range(256)) * 2


def png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
