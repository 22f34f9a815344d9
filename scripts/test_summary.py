#!/usr/bin/env python3
"""Counts ctest results per platform from ctest's console output (one or more runs).

A test named "sandbox/..." or "kvm/..." ran on that platform; any other boots no guest ("host").
Prints one line per platform, then the total, each as "N passed, M failed, K skipped"."""
import re
import sys

line = re.compile(r"^\s*\d+/\d+ Test\s+#\d+: (?P<name>.+?) \.+\s*(?P<result>\*{0,3}\w[\w ]*?)\s+[\d.]+ sec")
counts = {}
for path in sys.argv[1:]:
    with open(path, errors="replace") as f:
        for text in f:
            m = line.match(text)
            if not m:
                continue
            name, result = m.group("name"), m.group("result").strip("* ")
            platform = name.split("/", 1)[0] if name.startswith(("sandbox/", "kvm/")) else "host"
            c = counts.setdefault(platform, [0, 0, 0])
            if result == "Passed":
                c[0] += 1
            elif result.startswith("Skipped") or result == "Not Run":
                c[2] += 1
            else:
                c[1] += 1
total = [0, 0, 0]
for platform in ("sandbox", "kvm", "host"):
    c = counts.get(platform, [0, 0, 0])
    total = [a + b for a, b in zip(total, c)]
    print(f"{platform}: {c[0]} passed, {c[1]} failed, {c[2]} skipped")
print(f"total: {total[0]} passed, {total[1]} failed, {total[2]} skipped")
sys.exit(1 if total[1] else 0)
