"""``python -m cards``: rewrite cards/model-card.schema.json from the ModelCard model (``--check``: fail if stale)."""
from __future__ import annotations

import sys

from cards import SCHEMA_PATH, schema_text


def main() -> int:
    text = schema_text()
    if "--check" in sys.argv[1:]:
        if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text() != text:
            print(f"{SCHEMA_PATH} is stale: run python -m cards", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
