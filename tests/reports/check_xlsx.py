#!/usr/bin/python3
"""check_xlsx.py OUTDIR -- the XLSX files the report tests wrote, read with
Debian's python3-openpyxl and compared with the JSON answers saved beside
them:

  * sparkle.xlsx: the sheets; on each table sheet the bold header row,
    frozen (A2), an autofilter over the data; numbers stored as numbers
    (data type 'n') with their formats ("#,##0" counts, "0.0000" scores);
    Brand metrics, Campaigns and Sectors equal GET /v1/brands/sparkle, its
    campaigns and /v1/sectors/{s} (counts exactly; scores to 15 significant
    digits: libxlsxwriter writes 16, openpyxl reads them back as doubles);
    Histograms equal the brand's histograms, with native charts; Assets
    holds every asset of GET /v1/brands/sparkle/assets, in its order, with
    the same fields; the document's creation date is the data's (1980-01-01);
  * hostile.xlsx: names and free text exactly as stored (no truncation);
  * kit.xlsx: a money cell with a currency format, a date cell that is a
    date (2025-11-26 08:30).

Exits 1 naming every failure."""
import datetime
import glob
import json
import os
import sys

import openpyxl

out = sys.argv[1]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-15 * max(1.0, abs(a), abs(b))


def metric_order(metrics):
    names = sorted(metrics)
    if "memorability" in names:
        names.remove("memorability")
        names.insert(0, "memorability")
    return names


STATS = ["n", "mean", "stddev", "median", "p10", "p90", "min", "max", "sum_micro"]


def check_table_sheet(ws, ncols, nrows):
    if ws.freeze_panes != "A2":
        fail("%s: header row not frozen (%r)" % (ws.title, ws.freeze_panes))
    want = "A1:%s%d" % (openpyxl.utils.get_column_letter(ncols), nrows + 1)
    if ws.auto_filter.ref != want:
        fail("%s: autofilter %r, expected %r" % (ws.title, ws.auto_filter.ref, want))
    for c in ws[1][:ncols]:
        if not c.font or not c.font.b:
            fail("%s: header cell %s is not bold" % (ws.title, c.coordinate))


def check_stats(ws, row, col0, m, what):
    cells = list(ws.iter_rows(min_row=row, max_row=row, values_only=False))[0]
    for k, name in enumerate(STATS):
        c = cells[col0 + k]
        want = m["sum_micro"] if name == "sum_micro" else m[name]
        if c.data_type != "n":
            fail("%s %s: cell %s is of type %s, not a number" % (what, name, c.coordinate, c.data_type))
        elif name in ("n", "sum_micro"):
            if c.value != want:
                fail("%s %s: %r, JSON %r" % (what, name, c.value, want))
            if c.number_format != "#,##0":
                fail("%s %s: format %r" % (what, name, c.number_format))
        else:
            if not close(c.value, want):
                fail("%s %s: %r, JSON %r" % (what, name, c.value, want))
            if c.number_format != "0.0000":
                fail("%s %s: format %r" % (what, name, c.number_format))


wb = openpyxl.load_workbook(os.path.join(out, "sparkle.xlsx"))
want_sheets = ["Summary", "Brand metrics", "Campaigns", "Sectors", "Histograms", "Top assets",
               "Bottom assets", "Assets"]
if wb.sheetnames != want_sheets:
    fail("sheets %r, expected %r" % (wb.sheetnames, want_sheets))
if wb.properties.created != datetime.datetime(1980, 1, 1):
    fail("created %r: not the data's date" % wb.properties.created)
if wb.properties.title != "Brand score report: sparkle":
    fail("title %r" % wb.properties.title)

brand = json.load(open(os.path.join(out, "brand.json")))
ws = wb["Summary"]
summary = {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r[0]}
if summary.get("Brand") != "sparkle" or summary.get("Assets (aggregate)") != brand["count"]:
    fail("Summary: %r" % summary)

ws = wb["Brand metrics"]
names = metric_order(brand["metrics"])
check_table_sheet(ws, 10, len(names))
for k, name in enumerate(names):
    if ws.cell(k + 2, 1).value != name:
        fail("Brand metrics row %d: %r, expected %r" % (k + 2, ws.cell(k + 2, 1).value, name))
    check_stats(ws, k + 2, 1, brand["metrics"][name], "brand " + name)

campaigns = json.load(open(os.path.join(out, "campaigns.json")))["campaigns"]
ws = wb["Campaigns"]
row = 2
for c in campaigns:
    for name in metric_order(c["metrics"]):
        if ws.cell(row, 1).value != c["campaign"] or ws.cell(row, 2).value != name:
            fail("Campaigns row %d: %r %r, expected %r %r" % (row, ws.cell(row, 1).value,
                                                             ws.cell(row, 2).value, c["campaign"], name))
        check_stats(ws, row, 2, c["metrics"][name], "campaign %s %s" % (c["campaign"], name))
        row += 1
check_table_sheet(ws, 11, row - 2)
if ws.max_row != row - 1:
    fail("Campaigns has %d rows, expected %d" % (ws.max_row, row - 1))

ws = wb["Sectors"]
rows = list(ws.iter_rows(min_row=2, values_only=True))
for path in sorted(glob.glob(os.path.join(out, "sector-*.json"))):
    s = json.load(open(path))
    for name in metric_order(s["metrics"]):
        m = s["metrics"][name]
        hit = [r for r in rows if r[0] == s["sector"] and r[2] == name]
        if len(hit) != 1:
            fail("Sectors: %d rows for %s / %s" % (len(hit), s["sector"], name))
            continue
        r = hit[0]
        b = brand["metrics"][name]
        if r[3] != m["n"] or not all(close(x, y) for x, y in
                                     [(r[4], m["mean"]), (r[5], m["median"]), (r[6], m["p10"]),
                                      (r[7], m["p90"]), (r[8], b["mean"])]):
            fail("Sectors %s / %s: %r, JSON %r" % (s["sector"], name, r, m))
        if not abs(r[9] - (b["mean"] - m["mean"])) < 1e-12:
            fail("Sectors %s / %s difference %r" % (s["sector"], name, r[9]))

ws = wb["Histograms"]
check_table_sheet(ws, 2 + len(names), 100)
for k, name in enumerate(names):
    col = [ws.cell(r + 2, 3 + k).value for r in range(100)]
    if col != brand["metrics"][name]["histogram"]:
        fail("Histograms %s differ from the JSON histogram" % name)
if len(ws._charts) != len(names):
    fail("Histograms has %d charts, expected %d" % (len(ws._charts), len(names)))

# Every asset, in the API's order, with its fields.
assets = []
for path in sorted(glob.glob(os.path.join(out, "assets-*.json")),
                   key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0])):
    assets += json.load(open(path))["assets"]
ws = wb["Assets"]
header = [c.value for c in ws[1]]
sal = header[9:]
rows = list(ws.iter_rows(min_row=2, values_only=False))
if len(rows) != len(assets) or not assets:
    fail("Assets has %d rows, the API lists %d assets" % (len(rows), len(assets)))
check_table_sheet(ws, len(header), len(assets))
for r, a in zip(rows, assets):
    v = [c.value for c in r]
    want = [a.get("asset"), a.get("campaign"), a.get("sector"), a.get("client"), a.get("brand_id"),
            a.get("media_type"), a.get("model_version"), a.get("version")]
    if v[:8] != want:
        fail("Assets row %s: %r, API %r" % (r[0].row, v[:8], want))
        break
    if r[7].data_type != "n" or r[8].data_type != "n":
        fail("Assets row %s: version and memorability are not numbers" % r[0].row)
        break
    if not close(v[8], a.get("memorability")):
        fail("Assets row %s memorability %r, API %r" % (r[0].row, v[8], a.get("memorability")))
        break
    for k, name in enumerate(sal):
        if not close(v[9 + k], a.get("saliency", {}).get(name)):
            fail("Assets row %s %s: %r, API %r" % (r[0].row, name, v[9 + k], a["saliency"]))
            break

# Hostile text, exactly.
hb = openpyxl.load_workbook(os.path.join(out, "hostile.xlsx"))
hbrand = json.load(open(os.path.join(out, "hostile-brand.json")))["brand"]
summary = {r[0]: r[1] for r in hb["Summary"].iter_rows(values_only=True) if r[0]}
if summary.get("Brand") != hbrand:
    fail("hostile.xlsx brand %r, expected %r" % (summary.get("Brand"), hbrand))
models = {r[6] for r in hb["Assets"].iter_rows(min_row=2, values_only=True)}
for needle in ["<b>&amp; \"quoted\" 'single'</b> \U0001F600 \u05e9\u05dc\u05d5\u05dd e\u0301",
               "x" * 256]:
    if needle not in models:
        fail("hostile.xlsx lacks model_version %r" % needle[:40])
ids = {r[0] for r in hb["Assets"].iter_rows(min_row=2, values_only=True)}
if "h&'00" not in ids:
    fail("hostile.xlsx lacks asset h&'00")

# The kit's money and date cells.
kit = openpyxl.load_workbook(os.path.join(out, "kit.xlsx"))["Kit"]
money, date = kit["C2"], kit["D2"]
if money.value != 6.53 or "$" not in money.number_format or "0.00" not in money.number_format:
    fail("kit money cell %r %r" % (money.value, money.number_format))
if not money.data_type == "n":
    fail("kit money cell is not a number")
if not date.is_date or date.value != datetime.datetime(2025, 11, 26, 8, 30):
    fail("kit date cell %r (is_date %r, format %r)" % (date.value, date.is_date, date.number_format))
if kit["B2"].value != 3 or kit["E2"].value != 0.123456789012345:
    fail("kit numbers %r %r" % (kit["B2"].value, kit["E2"].value))

if failures:
    print("%d failures" % len(failures), file=sys.stderr)
    sys.exit(1)
print("ok: sparkle.xlsx (%d assets), hostile.xlsx and kit.xlsx agree with the JSON answers"
      % len(assets))
