"""Reads a callgrind output file and prints, for each function named on the
command line, how many times it was called and how many instructions it took, itself and
everything it called, in all and per call: one JSON object, keyed by function.

    python3 bench/callgrind_calls.py FILE FUNCTION...

Calls a function makes to itself are not counted again. A function that was
never called (or was inlined everywhere) is printed with zero calls."""
import json
import re
import sys

NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")


def read_calls(path):
    """Calls and inclusive instructions of every function, over all its callers."""
    names = {}
    calls = {}
    positions = 1
    caller = callee = None
    expect_call_cost = None

    def name(value):
        match = NAME.match(value)
        if not match:
            return value
        number, text = match.groups()
        if text is not None:
            names[number] = text
        return names[number]

    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if expect_call_cost is not None:
                fields = line.split()
                cost = int(fields[positions]) if len(fields) > positions else 0
                if callee != caller:
                    count, total = calls.get(callee, (0, 0))
                    calls[callee] = (count + expect_call_cost, total + cost)
                expect_call_cost = None
            elif line.startswith("positions:"):
                positions = len(line.split()[1:])
            elif line.startswith("fn="):
                caller = name(line[3:])
            elif line.startswith("cfn="):
                callee = name(line[4:])
            elif line.startswith("calls="):
                expect_call_cost = int(line[6:].split()[0])
    return calls


def main():
    path, functions = sys.argv[1], sys.argv[2:]
    calls = read_calls(path)
    counts = {}
    for function in functions:
        count, total = calls.get(function, (0, 0))
        counts[function] = {
            "calls": count,
            "instructions": total,
            "instructions_per_call": total / count if count else None,
        }
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
