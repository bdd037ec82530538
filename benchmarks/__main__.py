"""Run every benchmark (benchmarks/bench_*.py) in its own process and print their results as one JSON list.

Each benchmark prints exactly one JSON object on its last line of standard output.
`python -m benchmarks bench_claims` runs only the named ones.
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not wanted or p.stem in wanted)
    results = []
    failed = False
    for script in scripts:
        completed = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{script.stem}"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stderr.write(completed.stderr)
        lines = [line for line in completed.stdout.splitlines() if line.strip()]
        try:
            result = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            result = None
        if result is None:
            result = {"benchmark": script.stem, "error": "printed no JSON"}
        if completed.returncode != 0:
            # A benchmark that missed its target still reports its numbers; the exit code says it missed.
            result["exit_code"] = completed.returncode
            failed = True
        results.append(result)
    output = json.dumps(results, indent=2)
    out_dir = HERE.parent / "var"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench.json").write_text(output + "\n")
    sys.stdout.write(output + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
