"""Parses an SVG chart with Python's XML parser and lists its series.

Usage: svg_series.py CHART.svg

Prints one JSON object: {"root": <root tag>, "width": ..., "height": ...,
"series": [<data-series attribute of each <g>, in document order>],
"texts": [<every <text> content>]}. Exits non-zero if the file is not well-formed XML.
"""

import json
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def main():
    root = ET.parse(sys.argv[1]).getroot()
    series = [g.get("data-series") for g in root.iter(SVG + "g") if g.get("data-series")]
    texts = [t.text or "" for t in root.iter(SVG + "text")]
    print(json.dumps({"root": root.tag, "width": root.get("width"), "height": root.get("height"),
                      "series": series, "texts": texts}))


if __name__ == "__main__":
    main()
