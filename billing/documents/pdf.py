"""An invoice as a PDF, drawn with reportlab's platypus (pure Python, no system libraries).

A pure function of `billing.selectors.InvoiceDocument`: no database, no files; it returns the bytes.
"""

from decimal import Decimal
from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import landscape, letter
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.selectors import InvoiceDocument

HEADER = [
    "Item",
    "Plan",
    "From (UTC)",
    "To (UTC)",
    "Hours",
    "Unit price",
    "Amount",
    "Credit",
    "Waived",
    "Charged",
]
WIDTHS = [2.3, 1.5, 1.15, 1.15, 0.55, 0.75, 0.8, 0.7, 0.7, 0.8]


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


def price(value: Decimal) -> str:
    """$1.50, or $0.0075 when the rate has more places than cents."""
    text = f"{value.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def invoice_pdf(document: InvoiceDocument) -> bytes:
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    out = BytesIO()
    pdf = SimpleDocTemplate(
        out,
        pagesize=landscape(letter),
        leftMargin=0.5 * inch,
        rightMargin=0.5 * inch,
        topMargin=0.5 * inch,
        bottomMargin=0.5 * inch,
        title=f"Invoice {document.invoice_id}",
        author="gpuadmin",
    )
    customer = [
        document.account_name,
        document.account_company,
        document.account_email,
        document.account_country,
    ]
    story = [
        Paragraph(f"Invoice {document.invoice_id}", styles["Title"]),
        Paragraph(
            f"Period: {document.period:%Y-%m} (UTC) &nbsp; Date: {document.date:%Y-%m-%d} &nbsp; "
            f"Status: {escape(document.status)}",
            styles["Normal"],
        ),
        Paragraph("Account: " + escape(" / ".join(part for part in customer if part)), styles["Normal"]),
        Spacer(1, 0.2 * inch),
    ]
    rows = [HEADER]
    notes = []
    for number, line in enumerate(document.lines, start=1):
        label = escape(line.label) + (f" [{number}]" if line.note else "")
        if line.note:
            notes.append(f"[{number}] {line.note}")
        rows.append(
            [
                Paragraph(label, small),
                line.plan,
                f"{line.start:%Y-%m-%d %H:%M}",
                f"{line.end:%Y-%m-%d %H:%M}",
                str(line.hours),
                price(line.unit_price),
                money(line.list_amount),
                money(line.credit),
                money(line.waived),
                money(line.amount),
            ]
        )
    if not document.lines:
        rows.append(["No usage"] + [""] * (len(HEADER) - 1))
    table = Table(rows, colWidths=[width * inch for width in WIDTHS], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("ALIGN", (4, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.75, colors.black),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f2f2")]),
            ]
        )
    )
    story.append(table)
    story.append(Spacer(1, 0.2 * inch))
    tax_label = "Tax"
    if document.tax_name:
        tax_label = f"Tax: {document.tax_name} ({document.tax_percent.normalize():f}%)"
    totals = [
        ["Credits", money(document.credit)],
        ["Waived", money(document.waived)],
        ["Subtotal", money(document.subtotal)],
        [tax_label, money(document.tax)],
        ["Total", money(document.total)],
    ]
    summary = Table(totals, colWidths=[2.5 * inch, 1.2 * inch], hAlign="RIGHT")
    summary.setStyle(
        TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
            ]
        )
    )
    story.append(summary)
    if notes:
        story.append(Spacer(1, 0.2 * inch))
        story += [Paragraph(escape(note), small) for note in notes]
    story.append(Spacer(1, 0.2 * inch))
    story.append(
        Paragraph(
            "Hours are counted per item, each started hour whole, and each item is capped at its plan's "
            "monthly price. Amounts in US dollars.",
            small,
        )
    )
    pdf.build(story)
    return out.getvalue()
