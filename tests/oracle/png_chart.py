"""Opens a PNG chart with Pillow and counts, for each series of the SVG it was rendered
from, the pixels painted in that series' colour.

Usage: png_chart.py CHART.svg CHART.png

Prints one JSON object: {"format": "PNG", "width": ..., "height": ..., "series": {name:
{"color": "#rrggbb", "pixels": n}}, "dark_pixels": n (near-black: the labels)}. Exits
non-zero if either file does not parse.
"""

import json
import sys
import xml.etree.ElementTree as ET

from PIL import Image

SVG = "{http://www.w3.org/2000/svg}"


def series_colors(svg_path):
    colors = {}
    for group in ET.parse(svg_path).getroot().iter(SVG + "g"):
        name = group.get("data-series")
        if not name:
            continue
        for shape in list(group.iter(SVG + "circle")) + list(group.iter(SVG + "rect")):
            if shape.get("fill", "").startswith("#") and shape.get("fill-opacity") is None:
                colors[name] = shape.get("fill")
                break
    return colors


def main():
    svg_path, png_path = sys.argv[1], sys.argv[2]
    image = Image.open(png_path)
    image.load()
    rgb = image.convert("RGB")
    counts = {}
    for count, color in rgb.getcolors(maxcolors=rgb.width * rgb.height):
        counts[color] = count
    series = {}
    for name, color in series_colors(svg_path).items():
        key = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
        series[name] = {"color": color, "pixels": counts.get(key, 0)}
    dark = sum(n for c, n in counts.items() if max(c) < 64)
    print(json.dumps({"format": image.format, "width": image.width, "height": image.height,
                      "series": series, "dark_pixels": dark}))


if __name__ == "__main__":
    main()
