"""The IO-stack bridge part of docs/results.md, from the bridge/ set
(`echo-bench stack --stack iceoryx2|smoltcp`): the tables and goal 9's
verdict. Imported by scripts/results.py."""
import os
import re

# Goal 9: the iceoryx2 pipeline with the bridge at >= IOX_FLOOR of the same
# pipeline with its one unavoidable copy, above plain zio and no zio; the
# smoltcp echo with the bridge no slower than without it. A miss counts
# only when the whole interval misses (as goal 8's).
IOX_FLOOR = 0.95

RATIO = re.compile(r"([\d.]+) \(([\d.]+)-([\d.]+)\)")


def read(root, name):
    """The rows of one `echo-bench stack` table: size, MB/s per mode (in
    the header's order), and the bridge's ratios [(median, lo, hi)]."""
    path = os.path.join(root, "bridge", name + ".txt")
    if not os.path.exists(path):
        return None, []
    lines = open(path).read().splitlines()
    head = next((ln for ln in lines if ln.strip().startswith("size")), None)
    if head is None:
        return None, []
    names = re.split(r"\s{2,}", head.strip())[1:]
    rows = []
    for ln in lines[lines.index(head) + 1:]:
        parts = ln.split()
        if not parts or not re.match(r"^\d+[KMG]?$", parts[0]):
            continue
        ratios = [tuple(map(float, m)) for m in RATIO.findall(ln)]
        nmodes = len(names) - len(ratios)
        mbs = [float(x) for x in parts[1:1 + nmodes]]
        rows.append({"size": parts[0], "mbs": mbs, "ratios": ratios})
    return names, rows


def status(m, hi, floor):
    if m >= floor:
        return "met"
    return "unresolved" if hi >= floor else "not met"


def verdict(r):
    """Goal 9's 'now' and 'status' cells."""
    _, iox = read(r.root, "iceoryx2")
    _, smol = read(r.root, "smoltcp")
    if not iox and not smol:
        return "no data", "not measured"
    st, parts = [], []
    if iox:
        # Ratios: bridge / 1 copy, / without zio, / zio.
        s = [status(x["ratios"][0][0], x["ratios"][0][2], IOX_FLOOR) for x in iox]
        above = sum(x["ratios"][1][0] > 1 and x["ratios"][2][0] > 1 for x in iox)
        st += s
        each = ", ".join("%s %.2f" % (x["size"], x["ratios"][0][0]) for x in iox)
        parts.append(f"iceoryx2: zio+bridge / 1 copy ≥ {IOX_FLOOR} at {s.count('met')} of {len(iox)} "
                     f"sizes ({each}), above zio and no zio at {above}")
        st += ["met" if x["ratios"][1][0] > 1 and x["ratios"][2][0] > 1 else "not met" for x in iox]
    if smol:
        s = [status(x["ratios"][1][0], x["ratios"][1][2], 1.0) for x in smol]
        st += s
        each = ", ".join("%s %.2f" % (x["size"], x["ratios"][1][0]) for x in smol)
        parts.append(f"smoltcp: zio+bridge / zio {each}")
    if "not met" in st:
        return "; ".join(parts), "not met"
    return "; ".join(parts), "met" if all(x == "met" for x in st) else "not shown"


def block(r, table, name):
    """One stack's table."""
    names, rows = read(r.root, name)
    if not rows:
        return "no data"
    modes = len(rows[0]["mbs"])
    head = ["size"] + [f"{n}, MB/s" for n in names[:modes]] + [f"{n} (95% interval)" for n in names[modes:]]
    out = [[x["size"]] + [f"{v:.0f}" for v in x["mbs"]] + [f"{m:.3f} ({lo:.3f}–{hi:.3f})" for m, lo, hi in x["ratios"]]
           for x in rows]
    return table(head, out)
