#!/usr/bin/env python3
"""Per-function instructions per request from two callgrind profiles of one binary.

    bench/callgrind-diff.py N1 PROFILE_N1 N2 PROFILE_N2 [--inclusive] [--top K] [--match REGEX]

The profiles come from `KEEP=dir bench/callgrind.sh N1 N2 [TARGET]` (callgrind.N1, callgrind.N2).
Each function's count in the N1 run is subtracted from its count in the N2 run and divided by
N2 - N1, which cancels start-up and shutdown the way the script's total does. `--inclusive`
counts each function with everything it calls (a caller's figure then includes its callees',
so inclusive figures do not add up).
"""
import re
import subprocess
import sys


def per_function(path, inclusive):
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
         "--auto=no", "--show-percs=no", path],
        check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?$", line)
        if not m or ":" not in m.group(2):
            continue
        name = m.group(2).split(":", 1)[1]
        counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", ""))
    return counts


def main():
    args = sys.argv[1:]
    inclusive = "--inclusive" in args
    top = 40
    match = None
    if "--top" in args:
        top = int(args[args.index("--top") + 1])
    if "--match" in args:
        match = re.compile(args[args.index("--match") + 1])
    n1, p1, n2, p2 = int(args[0]), args[1], int(args[2]), args[3]
    a, b = per_function(p1, inclusive), per_function(p2, inclusive)
    rows = []
    for name in set(a) | set(b):
        d = (b.get(name, 0) - a.get(name, 0)) / (n2 - n1)
        if match and not match.search(name):
            continue
        rows.append((d, name))
    rows.sort(reverse=True)
    for d, name in rows[:top]:
        print(f"{d:10,.0f}  {name[:160]}")


if __name__ == "__main__":
    main()
