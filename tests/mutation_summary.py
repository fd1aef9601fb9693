"""Kill rate of mutation testing per module, from ``mutmut results``.

    mutmut results --all true | python tests/mutation_summary.py

A mutant is *killed* when a test fails with it, *survived* when every test
passed, *no tests* when no fast test runs its function (see docs/MUTATION.md).
The kill rate is killed / (killed + survived + no tests + timeout); mutants
not checked yet are left out.
"""

import re
import sys
from collections import Counter, defaultdict

LINE = re.compile(r"^\s*lazysignals\.(\w+)\.\S+: (.+)$")


def summarise(lines):
    """Module -> Counter of statuses."""
    by_module = defaultdict(Counter)
    for line in lines:
        m = LINE.match(line)
        if m:
            by_module[m.group(1)][m.group(2).strip()] += 1
    return by_module


def main():
    by_module = summarise(sys.stdin)
    print(f"{'module':10} {'killed':>6} {'survived':>8} {'no tests':>8} {'timeout':>7} {'rate':>6}")
    for module, n in sorted(by_module.items()):
        checked = n["killed"] + n["survived"] + n["no tests"] + n["timeout"]
        if not checked:
            continue
        rate = n["killed"] / checked
        print(f"{module:10} {n['killed']:6} {n['survived']:8} {n['no tests']:8} {n['timeout']:7} {rate:6.0%}")


if __name__ == "__main__":
    main()
