#!/usr/bin/python3
"""check_pdf.py OUTDIR GOLDEN_PNG -- the PDFs the report tests wrote, read with
tools nobody here wrote:

  * qpdf --check passes for every PDF;
  * pdfinfo: title, the data's date (1980-01-01, the brand data carry none),
    the paper (A4, Letter);
  * pdftotext -layout of sparkle.pdf: every number of the JSON answers the
    report covers (GET /v1/brands/sparkle, its campaigns, the sectors it is
    in), formatted as the report formats them (counts "1,234", scores
    "0.1234"), in order on the row of their table; "page i of N" on every
    page;
  * kit-table.pdf: the table header on every page it spans;
  * hostile.pdf and kit-hostile.pdf: the hostile names and free text are in
    the text layer (whole where the layout has room; narrow cells cut them
    with an ellipsis, which cairo 1.16 draws without a text mapping, so the
    fit itself is checked by reports_unit_test on pango's measured extents);
  * page 1 of sparkle.pdf rasterized by pdftoppm -r 50 matches GOLDEN_PNG
    (python3-pil): same size, and at most 0.5 % of the pixels differ by more
    than 48 in some channel.  SIGHTLINE_GOLDEN_UPDATE=1 rewrites the PNG
    instead (then commit it).

Exits 1 naming every failure."""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata

out, golden = sys.argv[1], sys.argv[2]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def run(*args):
    return subprocess.run(args, capture_output=True, text=True)


def text_of(pdf, page=None):
    args = ["pdftotext", "-layout", "-enc", "UTF-8"]
    if page:
        args += ["-f", str(page), "-l", str(page)]
    r = run(*args, pdf, "-")
    if r.returncode != 0:
        fail("pdftotext %s: %s" % (pdf, r.stderr))
    return unicodedata.normalize("NFC", r.stdout)


def info(pdf):
    r = run("pdfinfo", pdf)
    return dict(l.split(":", 1) for l in r.stdout.splitlines() if ":" in l)


def count(n):
    return "{:,}".format(n)


def score(x):
    return "-" if x is None else "%.4f" % x


def row_has(text, cells, what):
    """Some line holds cells in this order, separated by blanks."""
    pat = r"\s+".join(re.escape(c) for c in cells)
    if not re.search(r"(^|\s)" + pat + r"(\s|$)", text, re.M):
        fail("%s: no line holds %s" % (what, "  ".join(cells)))


def stats(m):
    return [count(m["n"]), score(m["mean"]), score(m["stddev"]), score(m["median"]),
            score(m["p10"]), score(m["p90"]), score(m["min"]), score(m["max"])]


def metric_order(metrics):
    names = sorted(metrics)
    if "memorability" in names:
        names.remove("memorability")
        names.insert(0, "memorability")
    return names


pdfs = sorted(glob.glob(os.path.join(out, "*.pdf")))
if len(pdfs) < 5:
    fail("expected the tests' PDFs in %s, found %s" % (out, pdfs))
for pdf in pdfs:
    r = run("qpdf", "--check", pdf)
    if r.returncode != 0:
        fail("qpdf --check %s: %s%s" % (pdf, r.stdout, r.stderr))

sp = os.path.join(out, "sparkle.pdf")
i = info(sp)
if i.get("Title", "").strip() != "Brand score report: sparkle":
    fail("sparkle.pdf title %r" % i.get("Title"))
if "1980" not in i.get("CreationDate", "") or "1980" not in i.get("ModDate", ""):
    fail("sparkle.pdf dates %r / %r: not the data's" % (i.get("CreationDate"), i.get("ModDate")))
if "A4" not in i.get("Page size", ""):
    fail("sparkle.pdf is not A4: %r" % i.get("Page size"))
if "letter" not in info(os.path.join(out, "sparkle-letter.pdf")).get("Page size", ""):
    fail("sparkle-letter.pdf is not Letter")

text = text_of(sp)
brand = json.load(open(os.path.join(out, "brand.json")))
row_has(text, ["Assets (aggregate)", count(brand["count"])], "brand count")
for name in metric_order(brand["metrics"]):
    row_has(text, [name] + stats(brand["metrics"][name]), "brand metric " + name)
campaigns = json.load(open(os.path.join(out, "campaigns.json")))["campaigns"]
if not campaigns:
    fail("no campaigns in campaigns.json")
for c in campaigns:
    for name in metric_order(c["metrics"]):
        row_has(text, [c["campaign"], name] + stats(c["metrics"][name]),
                "campaign %s metric %s" % (c["campaign"], name))
for path in sorted(glob.glob(os.path.join(out, "sector-*.json"))):
    s = json.load(open(path))
    for name in metric_order(s["metrics"]):
        m, b = s["metrics"][name], brand["metrics"].get(name)
        cells = [s["sector"], name]
        if name == "memorability":
            cells = cells[:2]  # the first row also holds the brand's assets in the sector
        row_has(text, [count(m["n"]), score(m["mean"]), score(m["median"])]
                + ([score(b["mean"]), score(b["mean"] - m["mean"])] if b else []),
                "sector %s metric %s" % (s["sector"], name))
        row_has(text, cells, "sector %s metric %s name" % (s["sector"], name))
pages = int(i.get("Pages", "0"))
for p in range(1, pages + 1):
    if ("page %d of %d" % (p, pages)) not in text_of(sp, p):
        fail("sparkle.pdf page %d has no 'page %d of %d'" % (p, p, pages))

# A long table: its header on every page.
kt = os.path.join(out, "kit-table.pdf")
kp = int(info(kt).get("Pages", "0"))
if kp < 3:
    fail("kit-table.pdf has %d pages; 300 rows take more" % kp)
for p in range(1, kp + 1):
    if not re.search(r"row number\s+label column", text_of(kt, p)):
        fail("kit-table.pdf page %d lacks the table header" % p)
kt_text = text_of(kt)
for n in (1, 150, 300):
    row_has(kt_text, [str(n), "label %d" % n], "kit-table row %d" % n)

# Hostile text, whole where there is room, else cut with an ellipsis.
ht = text_of(os.path.join(out, "hostile.pdf"))
hb = json.load(open(os.path.join(out, "hostile-brand.json")))["brand"]
for needle in [unicodedata.normalize("NFC", hb), "code & Co's", "h&'00", "<b>&amp;"]:
    if needle not in ht:
        fail("hostile.pdf text lacks %r" % needle)
kh = text_of(os.path.join(out, "kit-hostile.pdf"))
for needle in ["Procter & Gamble <b>bold</b> \"quoted\" 'single'", "emoji", "WWWWWWWW"]:
    if needle not in kh:
        fail("kit-hostile.pdf text lacks %r" % needle)

# The golden image of page 1.
with tempfile.TemporaryDirectory(prefix="sl-golden-") as tmp:
    r = run("pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", "-singlefile", sp,
            os.path.join(tmp, "page1"))
    png = os.path.join(tmp, "page1.png")
    if r.returncode != 0 or not os.path.exists(png):
        fail("pdftoppm: %s" % r.stderr)
    elif os.environ.get("SIGHTLINE_GOLDEN_UPDATE") == "1":
        import shutil
        shutil.copyfile(png, golden)
        print("golden image written to", golden)
    else:
        from PIL import Image, ImageChops
        a, b = Image.open(png).convert("RGB"), Image.open(golden).convert("RGB")
        if a.size != b.size:
            fail("page 1 is %s pixels, the golden image %s" % (a.size, b.size))
        else:
            diff = ImageChops.difference(a, b)
            bad = sum(1 for px in diff.getdata() if max(px) > 48)
            total = a.size[0] * a.size[1]
            print("golden image: %d of %d pixels differ by more than 48 (limit 0.5%%)" % (bad, total))
            if bad > total * 0.005:
                keep = os.path.join(out, "page1-actual.png")
                a.save(keep)
                fail("page 1 differs from %s in %d pixels; see %s" % (golden, bad, keep))

if failures:
    print("%d failures" % len(failures), file=sys.stderr)
    sys.exit(1)
print("ok: %d PDFs checked" % len(pdfs))
