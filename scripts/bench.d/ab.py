"""scripts/bench-ab's summary: each variant's ratios to the native run of the same round."""
import re
import statistics
import sys

def field(line, name):
    return float(re.search(rf"\b{name}=([\d.]+)", line).group(1))

rounds = []
for line in open(sys.argv[1]):
    variant, result = line.rstrip("\n").split("\t")
    if variant == "native":
        rounds.append({})
    rounds[-1][variant] = result
print(f"{'variant':<40} {'captures/s':>10} {'ratio':>6} {'p99 ratio':>9}  backlog  (each round: ratio/p99 ratio)")
for variant in sys.argv[2:]:
    ratios = [field(r[variant], "rps") / field(r["native"], "rps") for r in rounds]
    tails = [field(r[variant], "p99_ms") / field(r["native"], "p99_ms") for r in rounds]
    rates = [field(r[variant], "rps") for r in rounds]
    backlog = [int(field(r[variant], "backlog")) for r in rounds]
    each = " ".join(f"{a:.2f}/{b:.1f}" for a, b in zip(ratios, tails))
    print(f"{variant:<40} {statistics.median(rates):>10.0f} {statistics.median(ratios):>6.2f} "
          f"{statistics.median(tails):>9.2f}  {statistics.median(backlog):>7.0f}  ({each})")
natives = [field(r["native"], "rps") for r in rounds]
backlog = [int(field(r["native"], "backlog")) for r in rounds]
print(f"{'native (the baseline)':<40} {statistics.median(natives):>10.0f} {1:>6.2f} {1:>9.2f}  {statistics.median(backlog):>7.0f}")
