"""The records every capture client sends, so the fixture test can check them.

Record i (0..9): key "key-{i}", value "value-{i}-" + 200 x "x" (so that
compression has something to do), one header "idx" = "{i}".
"""

RECORD_COUNT = 10


def fixture_records():
    """Yields (key, value, headers) as bytes for each fixture record."""
    for i in range(RECORD_COUNT):
        key = f"key-{i}".encode()
        value = f"value-{i}-".encode() + b"x" * 200
        yield key, value, [("idx", str(i).encode())]
