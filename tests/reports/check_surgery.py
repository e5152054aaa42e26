#!/usr/bin/python3
"""check_surgery.py OUTDIR GOLDEN_PNG -- the surgery tool-usage reports the
tests wrote (reports_surgery_test: through the server, from a simulated and
analyzed surgery; reports_unit_test: surgery-kit.*, a hand-made model with
hostile text), read with tools nobody here wrote:

  * qpdf --check passes for every surgery PDF;
  * pdfinfo: title, the surgery's start as the document's date, the paper;
  * pdftotext -layout of surgery.pdf: every number of the usage answer
    (surgery-usage.json, GET /v1/surgeries/{id}/usage) as the report
    formats it, on the row of its table: opened, used and unused counts,
    each used SKU's quantity, each unused SKU's quantity, unit cost and
    cost, the totals, the waste cost, frames, frames without detections,
    detections, unmapped detections, each unmapped label's count; one
    timeline note per departure the XLSX lists; "page i of N";
  * surgery-catalog-changed.pdf carries the catalog note;
  * surgery-hostile.pdf: the hostile room and surgeon in the text layer;
  * surgery-kit.pdf (hostile text, 152 departures): the timeline continues
    across pages, its axis under each part;
  * page 1 of surgery.pdf rasterized by pdftoppm -r 50 matches GOLDEN_PNG
    (python3-pil): same size, and at most 0.5 % of the pixels differ by more
    than 48 in some channel (the page holds the analysis time, a few
    glyphs); SIGHTLINE_GOLDEN_UPDATE=1 rewrites it;
  * openpyxl: surgery.xlsx's sheets, frozen headers, filters, cell types,
    number formats (currency, dates, time spans) and values equal to the
    usage answer; the native bar chart of the departures (in the package);
    the hostile strings whole in surgery-hostile.xlsx and surgery-kit.xlsx.

Exits 1 naming every failure."""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

import openpyxl

out, golden = sys.argv[1], sys.argv[2]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def run(*args):
    return subprocess.run(args, capture_output=True, text=True)


def nfc(s):
    return unicodedata.normalize("NFC", s)


def text_of(pdf):
    r = run("pdftotext", "-layout", "-enc", "UTF-8", pdf, "-")
    if r.returncode != 0:
        fail("pdftotext %s: %s" % (pdf, r.stderr))
    return nfc(r.stdout)


def info(pdf):
    r = run("pdfinfo", pdf)
    return dict((k.strip(), v.strip()) for k, v in
                (l.split(":", 1) for l in r.stdout.splitlines() if ":" in l))


def count(n):
    return "{:,}".format(n)


def money(cents):
    return "%s$%s.%02d" % ("-" if cents < 0 else "", "{:,}".format(abs(cents) // 100),
                           abs(cents) % 100)


def row_has(text, cells, what):
    pat = r"\s+".join(re.escape(c) for c in cells)
    if not re.search(r"(^|\s)" + pat + r"(\s|$)", text, re.M):
        fail("%s: no line holds %s" % (what, "  ".join(cells)))


def section(text, start, end):
    a = text.find(start)
    b = text.find(end, a + 1) if a >= 0 else -1
    if a < 0 or b < 0:
        fail("no section from %r to %r" % (start, end))
        return ""
    return text[a:b]


def load(name):
    with open(os.path.join(out, name), encoding="utf-8") as f:
        return json.load(f)


if not os.path.exists(os.path.join(out, ".surgery-done")):
    fail("reports_surgery_test did not finish writing %s" % out)
    sys.exit(1)

usage = load("surgery-usage.json")
pdfs = ["surgery.pdf", "surgery-letter.pdf", "surgery-hostile.pdf",
        "surgery-catalog-changed.pdf", "surgery-kit.pdf"]
for name in pdfs:
    path = os.path.join(out, name)
    r = run("qpdf", "--check", path)
    if r.returncode != 0:
        fail("qpdf --check %s: %s%s" % (name, r.stdout[-500:], r.stderr[-500:]))
    else:
        print("ok: qpdf --check", name)

# Metadata: the title, the surgery's start as the date, the paper.
i = info(os.path.join(out, "surgery.pdf"))
if i.get("Title") != "Surgery tool-usage report: lap-0001":
    fail("surgery.pdf title: %r" % i.get("Title"))
if "Nov 26 08:15:00 2026" not in i.get("CreationDate", ""):
    fail("surgery.pdf CreationDate %r is not the surgery's start" % i.get("CreationDate"))
if not i.get("Page size", "").startswith("595.276 x 841.89"):
    fail("surgery.pdf is not A4: %r" % i.get("Page size"))
if not info(os.path.join(out, "surgery-letter.pdf")).get("Page size", "").startswith("612 x 792"):
    fail("surgery-letter.pdf is not Letter")

# Every number of the usage answer, where the report puts it.
t = text_of(os.path.join(out, "surgery.pdf"))
pages = int(i.get("Pages", "0"))
for p in range(1, pages + 1):
    if "page %d of %d" % (p, pages) not in t:
        fail("surgery.pdf: no 'page %d of %d'" % (p, pages))
summ = section(t, "\nSummary", "Used tools")
row_has(summ, ["Opened", count(usage["opened"])], "summary")
used_total = sum(u["quantity"] for u in usage["used"])
unused_total = sum(u["quantity"] for u in usage["unused"])
row_has(summ, ["Used", count(used_total)], "summary")
row_has(summ, ["Unused", count(unused_total)], "summary")
row_has(summ, ["Waste cost", money(usage["waste_cost_cents"])], "summary")
used = section(t, "\nUsed tools", "\nUnused tools")
for u in usage["used"]:
    row_has(used, [u["sku"], count(u["quantity"])], "used tools")
row_has(used, ["Total", count(used_total)], "used tools")
unused = section(t, "\nUnused tools", "When each tool left")
for u in usage["unused"]:
    if not re.search(re.escape(u["sku"]) + r"\s+" + re.escape(count(u["quantity"])) +
                     r"\s+(yes|no)\s+" + re.escape(money(u["unit_cost_cents"])) + r"\s+" +
                     re.escape(money(u["cost_cents"])), unused):
        fail("unused tools: no row %s %s ... %s %s" % (u["sku"], u["quantity"],
                                                        money(u["unit_cost_cents"]),
                                                        money(u["cost_cents"])))
row_has(unused, ["Total", count(unused_total)], "unused tools")
row_has(unused, [money(usage["waste_cost_cents"])], "unused tools total")
row_has(t, ["Frames analyzed", count(usage["frames"])], "header")
quality = section(t, "\nData quality", "page %d of %d" % (pages, pages))
if "Frames without detections: %s of %s" % (count(usage["frames_empty"]),
                                            count(usage["frames"])) not in quality:
    fail("data quality: no 'Frames without detections: %s of %s'" %
         (count(usage["frames_empty"]), count(usage["frames"])))
if "Detections: %s, of which %s carry" % (count(usage["detections"]),
                                          count(usage["unmapped_detections"])) not in quality:
    fail("data quality: detections %s / unmapped %s not stated" %
         (usage["detections"], usage["unmapped_detections"]))
for l in usage["unmapped_labels"]:
    row_has(quality, [nfc(l["label"]), count(l["detections"]), "yes" if l["occluder"] else "no"],
            "unmapped labels")
departures = re.findall(r"#\d+ left \d+:\d\d", t)
print("ok: surgery.pdf holds the usage answer's %d used and %d unused lines, %d departures"
      % (len(usage["used"]), len(usage["unused"]), len(departures)))

changed = text_of(os.path.join(out, "surgery-catalog-changed.pdf"))
if "SKU VESSEL-SEALER: its catalog entry changed since the analysis" not in changed:
    fail("surgery-catalog-changed.pdf does not note VESSEL-SEALER's new catalog entry")
if "catalog entry changed" in t:
    fail("surgery.pdf notes a catalog change that did not happen")

# Hostile text.
with open(os.path.join(out, "surgery-room.txt"), encoding="utf-8") as f:
    room = nfc(f.read())
ht = text_of(os.path.join(out, "surgery-hostile.pdf"))
for piece in ['OR <3> & "', "'quoted'", "Dr.", "O'Brien-"]:
    if nfc(piece) not in ht:
        fail("surgery-hostile.pdf: %r not in its text" % piece)
hu = load("surgery-hostile-usage.json")
if [(u["sku"], u["quantity"]) for u in hu["used"]] != [(u["sku"], u["quantity"]) for u in usage["used"]]:
    fail("the hostile surgery's usage differs from the plain one's (same frames)")
kt = text_of(os.path.join(out, "surgery-kit.pdf"))
if "Departures, in time order (continued)" not in kt:
    fail("surgery-kit.pdf: the timeline does not continue on a next page")
# reports_unit_test's model: 12 SKUs of 15 instances, 4 of them with 12 used
# and 8 with 13: 152 departures
KIT_DEPARTURES = 152
if len(re.findall(r"#\d+ left \d+:\d\d(:\d\d)?", kt)) != KIT_DEPARTURES:
    fail("surgery-kit.pdf: %d departures in the timeline, not 152" %
         len(re.findall(r"#\d+ left \d+:\d\d(:\d\d)?", kt)))
kp = int(info(os.path.join(out, "surgery-kit.pdf")).get("Pages", "0"))
axes = len(re.findall(r"\sminutes\s*$", kt, re.M))
if axes < 2:
    fail("surgery-kit.pdf: the timeline's axis is under %d parts, not one per page" % axes)
print("ok: hostile text and page breaks (%d pages, the timeline's axis under %d parts)" % (kp, axes))

# Golden image of page 1.
with tempfile.TemporaryDirectory(prefix="sl-golden-") as tmp:
    r = run("pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png",
            os.path.join(out, "surgery.pdf"), os.path.join(tmp, "p"))
    pngs = [f for f in os.listdir(tmp) if f.endswith(".png")]
    if r.returncode != 0 or len(pngs) != 1:
        fail("pdftoppm: %s" % r.stderr)
    elif os.environ.get("SIGHTLINE_GOLDEN_UPDATE") == "1":
        shutil.copyfile(os.path.join(tmp, pngs[0]), golden)
        print("golden image written to", golden)
    else:
        from PIL import Image, ImageChops
        a = Image.open(os.path.join(tmp, pngs[0])).convert("RGB")
        b = Image.open(golden).convert("RGB")
        if a.size != b.size:
            fail("page 1 is %s pixels, the golden image %s" % (a.size, b.size))
        else:
            diff = ImageChops.difference(a, b)
            total = a.size[0] * a.size[1]
            bad = sum(1 for px in diff.getdata() if max(px) > 48)
            print("golden image: %d of %d pixels differ by more than 48 (limit 0.5%%)" % (bad, total))
            if bad > total * 0.005:
                keep = os.path.join(out, "surgery-page1-actual.png")
                a.save(keep)
                fail("page 1 differs from %s in %d pixels; see %s" % (golden, bad, keep))

# XLSX.
MONEY = '"$"#,##0.00'


def table(ws):
    rows = list(ws.iter_rows())
    head = [c.value for c in rows[0]]
    return head, rows[1:]


def check_table_sheet(ws, ncols):
    if ws.freeze_panes != "A2":
        fail("%s: header not frozen (%r)" % (ws.title, ws.freeze_panes))
    if not ws.auto_filter.ref or not ws.auto_filter.ref.startswith("A1:"):
        fail("%s: no autofilter (%r)" % (ws.title, ws.auto_filter.ref))


wb = openpyxl.load_workbook(os.path.join(out, "surgery.xlsx"))
want = ["Summary", "Used tools", "Unused tools", "Timeline", "Instances", "Unmapped labels"]
if wb.sheetnames != want:
    fail("surgery.xlsx sheets %r, not %r" % (wb.sheetnames, want))
summary = {r[0].value: r[1] for r in wb["Summary"].iter_rows() if r[0].value and len(r) > 1}


def summary_is(label, value, fmt=None, typ=None):
    c = summary.get(label)
    if c is None:
        fail("Summary: no %r" % label)
        return
    if c.value != value:
        fail("Summary %r = %r, not %r" % (label, c.value, value))
    if fmt and c.number_format != fmt:
        fail("Summary %r format %r, not %r" % (label, c.number_format, fmt))
    if typ and not isinstance(c.value, typ):
        fail("Summary %r is %s, not %s" % (label, type(c.value), typ))


summary_is("Surgery", "lap-0001")
summary_is("Hospital", "st-mary")
summary_is("Room", "OR 3")
summary_is("Surgeon", "Dr. Grey")
summary_is("Started", datetime.datetime(2026, 11, 26, 8, 15), "yyyy-mm-dd hh:mm", datetime.datetime)
summary_is("Duration (video)", datetime.timedelta(minutes=12), "[h]:mm:ss", datetime.timedelta)
summary_is("Opened", usage["opened"], "#,##0", int)
summary_is("Used", used_total, "#,##0")
summary_is("Unused", unused_total, "#,##0")
summary_is("Waste cost", usage["waste_cost_cents"] / 100, MONEY)
summary_is("Frames analyzed", usage["frames"], "#,##0")
summary_is("Frames without detections", usage["frames_empty"], "#,##0")
summary_is("Detections", usage["detections"], "#,##0")
summary_is("Unmapped detections", usage["unmapped_detections"], "#,##0")
if not isinstance(summary.get("Analyzed").value if summary.get("Analyzed") else None, datetime.datetime):
    fail("Summary: Analyzed is not a date")

for name, lines, unused in (("Used tools", usage["used"], False), ("Unused tools", usage["unused"], True)):
    ws = wb[name]
    check_table_sheet(ws, 6)
    head, rows = table(ws)
    if head != ["tool", "sku", "quantity", "single_use", "unit_cost", "waste" if unused else "line_cost"]:
        fail("%s header %r" % (name, head))
    got = [(r[1].value, r[0].value, r[2].value) for r in rows]
    exp = [(u["sku"], u["name"], u["quantity"]) for u in lines]
    if got != exp:
        fail("%s rows %r, not the usage answer's %r" % (name, got, exp))
    for r in rows:
        if not isinstance(r[2].value, int) or r[2].number_format != "#,##0":
            fail("%s: quantity %r (%s) is no count" % (name, r[2].value, r[2].number_format))
        for c in (r[4], r[5]):
            if c.number_format != MONEY or not isinstance(c.value, (int, float)):
                fail("%s: %r (%s) is no money cell" % (name, c.value, c.number_format))
    if unused:
        for r, u in zip(rows, lines):
            if round(r[4].value * 100) != u["unit_cost_cents"] or round(r[5].value * 100) != u["cost_cents"]:
                fail("Unused tools %s: %r, %r against %r, %r cents" % (u["sku"], r[4].value, r[5].value,
                                                                    u["unit_cost_cents"], u["cost_cents"]))

head, inst = table(wb["Instances"])
check_table_sheet(wb["Instances"], 14)
left = [r for r in inst if r[5].value is not None]
if sum(1 for r in inst if r[3].value == "yes") != used_total:
    fail("Instances: %d used, the usage answer %d" % (sum(1 for r in inst if r[3].value == "yes"), used_total))
if sum(1 for r in inst if r[3].value == "no") != unused_total:
    fail("Instances: unused rows differ from the usage answer's %d" % unused_total)
for r in inst:
    if not isinstance(r[4].value, datetime.timedelta) or r[4].number_format != "[h]:mm:ss":
        fail("Instances: opened_at %r (%s) is no time span" % (r[4].value, r[4].number_format))
    if r[5].value is not None and not isinstance(r[7].value, datetime.datetime):
        fail("Instances: left_time %r is no date" % (r[7].value,))
if len(departures) != len(left):
    fail("surgery.pdf's timeline has %d departures, the Instances sheet %d" % (len(departures), len(left)))
head, tl = table(wb["Timeline"])
check_table_sheet(wb["Timeline"], 7)
if len(tl) != len(left):
    fail("Timeline sheet: %d rows, %d instances left" % (len(tl), len(left)))
mins = [r[4].value for r in tl]
if mins != sorted(mins):
    fail("Timeline sheet: not in time order")
with zipfile.ZipFile(os.path.join(out, "surgery.xlsx")) as z:
    charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
    if len(charts) != 1 or b"<c:barChart>" not in z.read(charts[0]) or b'<c:barDir val="bar"/>' not in z.read(charts[0]):
        fail("surgery.xlsx: no native bar chart of the departures (%r)" % charts)
head, um = table(wb["Unmapped labels"])
got = [(r[0].value, r[1].value, r[2].value == "yes") for r in um]
exp = [(l["label"], l["detections"], l["occluder"]) for l in usage["unmapped_labels"]]
if got != exp:
    fail("Unmapped labels %r, not %r" % (got, exp))
print("ok: surgery.xlsx agrees with the usage answer (%d instances, %d departures)" % (len(inst), len(tl)))

hw = openpyxl.load_workbook(os.path.join(out, "surgery-hostile.xlsx"))
hs = {r[0].value: r[1].value for r in hw["Summary"].iter_rows() if r[0].value and len(r) > 1}
if nfc(hs.get("Room") or "") != room:
    fail("surgery-hostile.xlsx Room %r, not %r" % (hs.get("Room"), room))
if not (hs.get("Surgeon") or "").startswith("Dr. ") or len((hs.get("Surgeon") or "").encode()) != 256:
    fail("surgery-hostile.xlsx Surgeon is not the 256-byte name: %r" % hs.get("Surgeon"))
trocar = [u["name"] for u in hu["used"] + hu["unused"] if u["sku"] == "TROCAR-12"]
names = [r[0].value for r in hw["Used tools"].iter_rows(min_row=2)] + \
        [r[0].value for r in hw["Unused tools"].iter_rows(min_row=2)]
if not trocar or trocar[0] not in names or len(trocar[0].encode()) != 256:
    fail("surgery-hostile.xlsx does not hold TROCAR-12's hostile 256-byte name whole")
kw = openpyxl.load_workbook(os.path.join(out, "surgery-kit.xlsx"))
ks = {r[0].value: r[1].value for r in kw["Summary"].iter_rows() if r[0].value and len(r) > 1}
if not (ks.get("Room") or "").startswith("Procter & Gamble <b>bold</b>"):
    fail("surgery-kit.xlsx Room %r" % ks.get("Room"))
if len(list(kw["Timeline"].iter_rows(min_row=2))) != KIT_DEPARTURES:
    fail("surgery-kit.xlsx: the Timeline sheet does not list 152 departures")
print("ok: hostile text whole in the XLSX files")

if failures:
    print("%d failures" % len(failures), file=sys.stderr)
    sys.exit(1)
print("all surgery report checks passed")
