"""Planet-like satellite tiles: the 17 tags of Kaggle's "Understanding the Amazon from Space",
drawn procedurally, written as ``train-jpg/train_{i}.jpg`` plus ``train_v2.csv`` (image_name,tags).

Each tile has exactly one weather tag (clear, partly_cloudy, cloudy, haze) and land tags drawn
with frequencies ordered as in the real set (primary and clear common; blow_down and
conventional_mine rare). Every tag is drawn as something you can see: forest canopy (primary),
field grids (agriculture), rivers and lakes (water), thin roads, roof clusters (habitation),
small clearings (cultivation), bare soil, fishbone logging tracks, mining ponds with sand,
speckles of flowering crowns (blooming), burnt patches, streaked fallen forest (blow_down), and
terraced open pits (conventional_mine). After the clouds are drawn, a land tag stays on the label
only if enough of its pixels remain visible, and a cloudy tile (overcast) has no land tags, as
in the real set. Positions, sizes, colours, lighting and textures vary from tile to tile, so a
tag cannot be read off a global colour mean.
"""
from pathlib import Path

import numpy as np

from ..image_io import write_image, write_text
from .draw import (Canvas, blob, disk, fractal_noise, jitter, meander, rectangle, rotated, textured,
                   union, value_noise)
from .output import is_complete, mark_complete, prepare

PLANET_TAGS = ("clear", "partly_cloudy", "cloudy", "haze", "primary", "agriculture", "water", "road",
               "habitation", "cultivation", "bare_ground", "selective_logging", "artisinal_mine", "blooming",
               "slash_burn", "blow_down", "conventional_mine")
WEATHER_FREQUENCY = {"clear": 0.70, "partly_cloudy": 0.17, "haze": 0.07, "cloudy": 0.06}
LAND_FREQUENCY = {"agriculture": 0.33, "bare_ground": 0.03, "cultivation": 0.12, "blow_down": 0.012,
                  "slash_burn": 0.014, "conventional_mine": 0.012, "water": 0.19, "artisinal_mine": 0.015,
                  "road": 0.22, "habitation": 0.10, "selective_logging": 0.015, "blooming": 0.015}
"""Probability of each land tag on a tile that is not overcast; the dict order is the drawing order
(large areas first, small features on top). primary: 0.96."""
FOREST_ONLY = {"selective_logging", "blooming", "slash_burn", "blow_down", "cultivation"}
TAG_INDEX = {tag: i for i, tag in enumerate(PLANET_TAGS)}


# --------------------------------------------------------------------------- tags
def sample_tags(rng):
    """(weather, land tags) of one tile, before visibility is checked."""
    weather = rng.choice(list(WEATHER_FREQUENCY), p=list(WEATHER_FREQUENCY.values()))
    if weather == "cloudy":
        return weather, []
    primary = rng.random() < 0.96
    land = [tag for tag, p in LAND_FREQUENCY.items() if rng.random() < p and (primary or tag not in FOREST_ONLY)]
    if "habitation" in land and "road" not in land and rng.random() < 0.85:
        land.insert(land.index("habitation"), "road")       # settlements sit on roads
    if not primary and not {"agriculture", "bare_ground"} & set(land):
        land.insert(0, "agriculture")                         # open land is farmed
    return weather, (["primary"] if primary else []) + land


# --------------------------------------------------------------------------- land cover
def _random_point(rng, canvas, margin=0.15):
    return rng.uniform(margin, 1 - margin, 2) * (canvas.width, canvas.height)


def paint_ground(canvas, rng, scale, forest):
    """Rainforest canopy (bumpy dark green, crowns a few pixels wide) or open land (smooth, pale)."""
    h, w = canvas.height, canvas.width
    if forest:
        crowns = fractal_noise(rng, h, w, w / (5 * scale), octaves=2)
        large = value_noise(rng, h, w, 3)
        color = jitter(rng, (0.15, 0.30, 0.13), 0.035)
        canvas.paint(1.0, textured(color, crowns, 0.75) * (0.9 + 0.2 * large[..., None]), TAG_INDEX["primary"])
    else:
        canvas.paint(1.0, textured(jitter(rng, (0.5, 0.47, 0.32), 0.06), value_noise(rng, h, w, 6), 0.3))


def paint_agriculture(canvas, rng, scale, owner):
    """A grid of rectangular fields in pale greens, yellows and browns, covering one side of a
    wavy line across the tile."""
    cx, cy = _random_point(rng, canvas, 0.3)
    s, t = rotated(canvas, cx, cy, rng.uniform(0, 2 * np.pi))
    region = np.clip(0.5 + t + 6 * scale * np.sin(s / (20 * scale) + rng.uniform(0, 6)), 0, 1)
    a, b = rotated(canvas, 0, 0, rng.uniform(0, np.pi))
    size_a, size_b = rng.uniform(8, 20, 2) * scale
    palette = np.array([jitter(rng, c, 0.05) for c in ((0.62, 0.56, 0.38), (0.47, 0.58, 0.30), (0.62, 0.62, 0.36),
                                                      (0.52, 0.42, 0.28), (0.40, 0.50, 0.26), (0.70, 0.66, 0.50))])
    table = rng.integers(0, len(palette), (16, 16))
    fields = palette[table[np.floor(a / size_a).astype(int) % 16, np.floor(b / size_b).astype(int) % 16]]
    edge = np.minimum(np.abs((a / size_a + 0.5) % 1 - 0.5) * size_a, np.abs((b / size_b + 0.5) % 1 - 0.5) * size_b)
    fields *= np.where(edge < 0.6 * scale, 0.8, 1.0)[..., None]
    fields = textured(1.0, value_noise(rng, canvas.height, canvas.width, canvas.width / (4 * scale)), 0.15) * fields
    canvas.paint(region, fields, owner)


def paint_bare_ground(canvas, rng, scale, owner):
    for _ in range(rng.integers(1, 3)):
        cx, cy = _random_point(rng, canvas)
        grain = value_noise(rng, canvas.height, canvas.width, canvas.width / (2 * scale))
        color = textured(jitter(rng, (0.70, 0.53, 0.38), 0.06), grain, 0.45)
        canvas.paint(blob(canvas, rng, cx, cy, rng.uniform(8, 18) * scale, 0.5), color, owner)


def paint_cultivation(canvas, rng, scale, owner):
    """Small irregular clearings in the forest, a patchwork of young crops and soil."""
    centre = _random_point(rng, canvas, 0.25)
    patches = [blob(canvas, rng, *(centre + rng.normal(0, 14 * scale, 2)), rng.uniform(3, 6.5) * scale, 0.6)
               for _ in range(rng.integers(3, 7))]
    mosaic = value_noise(rng, canvas.height, canvas.width, canvas.width / (3 * scale))[..., None] > 0.5
    color = np.where(mosaic, jitter(rng, (0.42, 0.55, 0.27)), jitter(rng, (0.60, 0.50, 0.33)))
    canvas.paint(union(*patches), color, owner)


def paint_blow_down(canvas, rng, scale, owner):
    """A patch of fallen forest: pale olive, streaked by parallel trunks."""
    cx, cy = _random_point(rng, canvas)
    s, _ = rotated(canvas, cx, cy, rng.uniform(0, np.pi))
    streaks = np.sin(2 * np.pi * s / (2.5 * scale))[..., None] > 0.2
    color = np.where(streaks, jitter(rng, (0.26, 0.30, 0.15)), jitter(rng, (0.45, 0.52, 0.28)))
    canvas.paint(blob(canvas, rng, cx, cy, rng.uniform(11, 20) * scale, 0.4), color, owner)


def paint_slash_burn(canvas, rng, scale, owner):
    """A burnt clearing: charcoal with grey ash."""
    cx, cy = _random_point(rng, canvas)
    ash = value_noise(rng, canvas.height, canvas.width, canvas.width / (2.5 * scale))[..., None] > 0.6
    color = np.where(ash, jitter(rng, (0.45, 0.43, 0.40)), jitter(rng, (0.09, 0.08, 0.07), 0.03))
    canvas.paint(blob(canvas, rng, cx, cy, rng.uniform(6, 12) * scale, 0.5), color, owner)


def paint_conventional_mine(canvas, rng, scale, owner):
    """An open pit of concentric terraces around a green pond, with a flat tailings area beside it."""
    cx, cy = _random_point(rng, canvas, 0.25)
    radius = rng.uniform(13, 22) * scale
    angle = rng.uniform(0, 2 * np.pi)
    canvas.paint(rectangle(canvas, cx + 1.2 * radius * np.cos(angle), cy + 1.2 * radius * np.sin(angle),
                           radius, 0.7 * radius, angle), jitter(rng, (0.84, 0.83, 0.78)), owner)
    terraces = np.array([jitter(rng, c, 0.04) for c in ((0.55, 0.54, 0.50), (0.72, 0.60, 0.42), (0.80, 0.77, 0.70))])
    ring = (np.hypot(canvas.x - cx, canvas.y - cy) / (2.5 * scale)).astype(int) % 3
    canvas.paint(blob(canvas, rng, cx, cy, radius, 0.2), terraces[ring], owner)
    canvas.paint(disk(canvas, cx, cy, 0.3 * radius), jitter(rng, (0.20, 0.45, 0.40)), owner)


def paint_water(canvas, rng, scale, owner):
    """A meandering river across the tile (or, one time in four, a lake); dark blue, brown or teal."""
    waters = [(0.10, 0.16, 0.30), (0.36, 0.31, 0.21), (0.10, 0.30, 0.30), (0.07, 0.09, 0.10)]
    color = jitter(rng, waters[rng.integers(4)])
    shading = textured(color, value_noise(rng, canvas.height, canvas.width, 4), 0.3)
    cx, cy = _random_point(rng, canvas, 0.3)
    if rng.random() < 0.75:
        shape = meander(canvas, rng, cx, cy, rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 4.5) * scale,
                        rng.uniform(4, 14) * scale, rng.uniform(40, 90) * scale)
    else:
        shape = blob(canvas, rng, cx, cy, rng.uniform(8, 16) * scale, 0.4)
    canvas.paint(shape, shading, owner)


def paint_artisinal_mine(canvas, rng, scale, owner):
    """A cluster of small turquoise, milky or orange ponds in bright sand."""
    centre = _random_point(rng, canvas, 0.25)
    canvas.paint(blob(canvas, rng, *centre, rng.uniform(8, 13) * scale, 0.5), jitter(rng, (0.83, 0.77, 0.60)), owner)
    ponds = np.array([(0.35, 0.62, 0.58), (0.72, 0.58, 0.40), (0.76, 0.50, 0.25)])
    for _ in range(rng.integers(4, 9)):
        centre_k = centre + rng.normal(0, 5 * scale, 2)
        canvas.paint(disk(canvas, *centre_k, rng.uniform(1.3, 3.0) * scale), jitter(rng, ponds[rng.integers(3)]), owner)


def paint_road(canvas, rng, scale, owner):
    """One or two nearly straight roads crossing the tile, 1.5 to 3 pixels wide (at 128 px)."""
    for _ in range(1 + (rng.random() < 0.3)):
        cx, cy = _random_point(rng, canvas, 0.2)
        angle = rng.uniform(0, 2 * np.pi)
        canvas.notes.setdefault("roads", []).append((cx, cy, angle))
        color = jitter(rng, [(0.74, 0.65, 0.50), (0.64, 0.62, 0.60)][rng.integers(2)])
        canvas.paint(meander(canvas, rng, cx, cy, angle, rng.uniform(0.75, 1.4) * scale, rng.uniform(0, 3) * scale,
                             200 * scale), color, owner)


def paint_habitation(canvas, rng, scale, owner):
    """A settlement: cleared ground and a cluster of small roofs (white, grey, red, blue), aligned
    with the road it sits on when there is one."""
    if canvas.notes.get("roads"):
        cx, cy, angle = canvas.notes["roads"][0]
        along = rng.uniform(-25, 25) * scale
        centre = np.array([cx + along * np.cos(angle), cy + along * np.sin(angle)])
    else:
        centre, angle = _random_point(rng, canvas), rng.uniform(0, np.pi)
    canvas.paint(blob(canvas, rng, *centre, rng.uniform(8, 14) * scale, 0.4), jitter(rng, (0.60, 0.56, 0.48)), owner)
    roofs = np.array([(0.92, 0.92, 0.90), (0.62, 0.62, 0.62), (0.72, 0.36, 0.26), (0.32, 0.42, 0.62)])
    for _ in range(rng.integers(6, 16)):
        x, y = centre + rng.normal(0, 6 * scale, 2)
        width, height = rng.uniform(2, 4.5, 2) * scale
        canvas.paint(rectangle(canvas, x, y, width, height, angle + rng.normal(0, 0.1)),
                     jitter(rng, roofs[rng.integers(4)], 0.04), owner)


def paint_selective_logging(canvas, rng, scale, owner):
    """A fishbone of thin logging tracks in the forest, with small clearings at the branch ends."""
    start = _random_point(rng, canvas, 0.25)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    length = rng.uniform(35, 60) * scale
    color = jitter(rng, (0.62, 0.52, 0.36))
    shapes = [rectangle(canvas, *(start + direction * length / 2), length, 1.1 * scale, angle)]
    for along in rng.uniform(0.1, 1.0, rng.integers(4, 8)) * length:
        side = angle + rng.choice([-1, 1]) * (np.pi / 2 + rng.normal(0, 0.2))
        branch = rng.uniform(6, 13) * scale
        end = start + direction * along + branch * np.array([np.cos(side), np.sin(side)])
        middle = start + direction * along + branch / 2 * np.array([np.cos(side), np.sin(side)])
        shapes += [rectangle(canvas, *middle, branch, 0.9 * scale, side),
                   disk(canvas, *end, rng.uniform(1.2, 2.2) * scale)]
    canvas.paint(union(*shapes), color, owner)


def paint_blooming(canvas, rng, scale, owner):
    """Flowering crowns: pink, white and yellow speckles scattered over a patch of forest."""
    cx, cy = _random_point(rng, canvas)
    h, w = canvas.height, canvas.width
    cell = max(1, int(round(1.5 * scale)))
    speckles = rng.random((h // cell + 1, w // cell + 1)) < rng.uniform(0.12, 0.2)
    speckles = np.repeat(np.repeat(speckles, cell, 0), cell, 1)[:h, :w]
    palette = np.array([(0.92, 0.52, 0.72), (0.95, 0.95, 0.90), (0.95, 0.90, 0.40), (0.80, 0.30, 0.60)], np.float32)
    colors = palette[rng.integers(0, 4, (h, w))]
    canvas.paint(blob(canvas, rng, cx, cy, rng.uniform(14, 24) * scale, 0.4) * speckles, colors, owner)


PAINTERS = {"agriculture": paint_agriculture, "bare_ground": paint_bare_ground, "cultivation": paint_cultivation,
            "blow_down": paint_blow_down, "slash_burn": paint_slash_burn,
            "conventional_mine": paint_conventional_mine, "water": paint_water,
            "artisinal_mine": paint_artisinal_mine, "road": paint_road, "habitation": paint_habitation,
            "selective_logging": paint_selective_logging, "blooming": paint_blooming}


# --------------------------------------------------------------------------- weather
def cloud_cover(canvas, rng, scale):
    """Alpha of one to four cumulus clouds: blobs eaten at the edges by fractal noise; retried
    until they cover between 8% and 50% of the tile."""
    h, w = canvas.height, canvas.width
    while True:
        texture = fractal_noise(rng, h, w, 6, octaves=3)
        clouds = union(*[blob(canvas, rng, *_random_point(rng, canvas, 0.0), rng.uniform(10, 30) * scale, 0.6,
                              softness=4 * scale) for _ in range(rng.integers(1, 5))])
        alpha = np.clip(clouds * (0.6 + 1.2 * texture), 0, 1)
        if 0.08 <= np.mean(alpha >= 0.5) <= 0.5:
            return alpha


def paint_weather(canvas, rng, scale, weather):
    """Draw the weather and return its cloud alpha (what hides the ground; 0 for clear and haze)."""
    h, w = canvas.height, canvas.width
    if weather == "partly_cloudy":
        alpha = cloud_cover(canvas, rng, scale)
        shift = (int(rng.integers(3, 7) * scale), int(rng.integers(2, 5) * scale))
        canvas.shade(1 - 0.45 * np.roll(alpha, shift, axis=(0, 1)))          # shadows on the ground
        canvas.paint(alpha, textured(jitter(rng, (0.93, 0.93, 0.95), 0.03), value_noise(rng, h, w, 8), 0.12))
        return alpha
    if weather == "cloudy":
        alpha = np.clip(0.92 + 0.1 * value_noise(rng, h, w, 4), 0, 1)
        canvas.paint(alpha, textured(jitter(rng, (0.82, 0.83, 0.86), 0.05), fractal_noise(rng, h, w, 4, 3), 0.3))
        return alpha
    if weather == "haze":
        alpha = rng.uniform(0.4, 0.6) + 0.15 * (value_noise(rng, h, w, 3) - 0.5)
        canvas.paint(alpha, jitter(rng, (0.78, 0.78, 0.80), 0.04))
    return np.zeros((h, w), dtype=np.float32)


# --------------------------------------------------------------------------- a tile
def draw_tile(rng, size):
    """One (size, size, 3) uint8 tile and its tags (in PLANET_TAGS order)."""
    scale = size / 128
    canvas = Canvas(size, size)
    weather, land = sample_tags(rng)
    paint_ground(canvas, rng, scale, forest="primary" in land)
    for tag in PAINTERS:
        if tag in land:
            PAINTERS[tag](canvas, rng, scale, TAG_INDEX[tag])
    hidden = paint_weather(canvas, rng, scale, weather) >= 0.5
    canvas.shade(rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3))       # sun and sensor
    canvas.image += rng.normal(0, 0.012, canvas.image.shape).astype(np.float32)
    visible = np.bincount(canvas.owner[~hidden] + 1, minlength=len(PLANET_TAGS) + 1)[1:]
    least = {"primary": 0.03 * size * size}
    tags = {weather} | {tag for tag in land if visible[TAG_INDEX[tag]] >= least.get(tag, max(4, 0.0015 * size * size))}
    return canvas.to_uint8(), [tag for tag in PLANET_TAGS if tag in tags]


def make_planet(out, n=1000, size=128, seed=0, progress=None):
    """Write ``n`` planet-like tiles of ``size`` pixels to ``out`` (``train-jpg/`` and
    ``train_v2.csv``) and return ``out`` as a Path. Tile i depends only on (seed, i).
    ``progress`` wraps the loop over the images (e.g. ``tinygrad_cv.train.progress_bar``, which the command line
    passes); None: no wrapper."""
    params = {"kind": "planet", "n": int(n), "size": int(size), "seed": int(seed)}
    if is_complete(out, params):
        return Path(out)
    out = prepare(out, ["train-jpg"], stale=["train-jpg/train_*.jpg", "train_v2.csv"])
    rows = ["image_name,tags"]
    for i in (progress or iter)(range(n)):
        image, tags = draw_tile(np.random.default_rng([seed, i]), size)
        write_image(out / "train-jpg" / f"train_{i}.jpg", image, quality=92)
        rows.append(f"train_{i},{' '.join(tags)}")
    write_text(out / "train_v2.csv", "\n".join(rows) + "\n")
    mark_complete(out, params)
    return out

