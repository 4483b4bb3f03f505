"""CamVid-like street scenes with a class index per pixel, in CamVid's layout:

    images/{stem}.png       (H, W, 3) RGB frames, H = 3/4 W as CamVid's 960x720
    labels/{stem}_P.png     P-mode PNG, pixel value = index into codes.txt
    codes.txt               the 32 CamVid class names, one per line
    valid.txt               the names of the validation frames (one fifth)

A scene seen from a car: sky, buildings with windows on both sides of a street drawn in
perspective (one vanishing point), sidewalks, the road with lane markings, trees, fences, poles
with signs, cars, pedestrians, bicyclists and some unlabelled clutter (Void). Twelve classes and
Void are used, as in the fastai lesson's scenes. Sizes follow the perspective, and positions,
colours, lighting and shadows vary, so classes are told apart by shape, texture and context.
"""
from pathlib import Path

import numpy as np

from ..image_io import write_image, write_mask, write_text
from .draw import Canvas, disk, fractal_noise, jitter, polygon, rectangle, textured, union, value_noise
from .output import is_complete, mark_complete, prepare

CAMVID_CODES = ("Animal", "Archway", "Bicyclist", "Bridge", "Building", "Car", "CartLuggagePram", "Child",
                "Column_Pole", "Fence", "LaneMkgsDriv", "LaneMkgsNonDriv", "Misc_Text", "MotorcycleScooter",
                "OtherMoving", "ParkingBlock", "Pedestrian", "Road", "RoadShoulder", "Sidewalk", "SignSymbol", "Sky",
                "SUVPickupTruck", "TrafficCone", "TrafficLight", "Train", "Tree", "Truck_Bus", "Tunnel",
                "VegetationMisc", "Void", "Wall")
C = {name: i for i, name in enumerate(CAMVID_CODES)}
USED_CLASSES = ("Sky", "Building", "Tree", "Road", "LaneMkgsDriv", "Sidewalk", "Fence", "Column_Pole", "SignSymbol",
                "Car", "Pedestrian", "Bicyclist", "Void")


class Street:
    """The perspective of one scene: horizon row ``horizon``, vanishing point column ``vanish``, and
    on each side the road edge and the building line, as their columns at the bottom row.

    A ground point at row y lies at a depth proportional to 1 / (y - horizon); an object standing
    there is scaled by ``eye(y) = y - horizon``, the image height of the camera's eye height at
    that depth (a person is about 1.05 eye heights tall).
    """

    def __init__(self, rng, height, width):
        self.height, self.width = height, width
        self.horizon = rng.uniform(0.36, 0.5) * height
        self.vanish = rng.uniform(0.4, 0.6) * width
        half_road = rng.uniform(0.45, 0.75, 2) * width
        self.road_edge = (self.vanish - half_road[0], self.vanish + half_road[1])
        walks = rng.uniform(0.25, 0.6, 2) * width
        self.building_line = (self.road_edge[0] - walks[0], self.road_edge[1] + walks[1])

    def eye(self, y):
        return np.maximum(y - self.horizon, 1e-3)

    def column(self, bottom_x, y):
        """Column at row y of the ground line from the vanishing point to (bottom_x, bottom row)."""
        return self.vanish + (bottom_x - self.vanish) * (y - self.horizon) / (self.height - self.horizon)

    def ground_row(self, bottom_x, x):
        """Row at column x of that same ground line (the inverse of ``column``)."""
        return self.horizon + (x - self.vanish) / (bottom_x - self.vanish) * (self.height - self.horizon)


# --------------------------------------------------------------------------- background
def paint_sky(canvas, rng):
    top, bottom = [((0.30, 0.50, 0.85), (0.75, 0.85, 0.95)), ((0.62, 0.64, 0.68), (0.84, 0.85, 0.87)),
                   ((0.45, 0.48, 0.70), (0.92, 0.78, 0.62))][rng.integers(3)]
    t = (canvas.y / canvas.height)[..., None]
    gradient = jitter(rng, top) * (1 - t) + jitter(rng, bottom) * t
    clouds = fractal_noise(rng, canvas.height, canvas.width, 4, 3)
    canvas.paint(1.0, gradient + 0.12 * (clouds[..., None] - 0.5), C["Sky"])


def paint_buildings(canvas, rng, street, side):
    """Facades from the building line up to their roofs, split along the street into buildings of
    their own colour and height, with rows and columns of windows in perspective."""
    line = street.building_line[side]
    canvas = canvas.crop(0, 0, street.vanish, street.height) if side == 0 else \
        canvas.crop(street.vanish, 0, street.width, street.height)
    x, y = canvas.x, canvas.y
    toward = (x < street.vanish) if side == 0 else (x > street.vanish)
    ground = street.ground_row(line, x)                  # where the facade meets the sidewalk
    eye = np.maximum(ground - street.horizon, 1e-3)
    depth = street.height / eye                          # distance along the street
    height = (ground - y) / eye                          # height above the ground, in eye heights
    bounds = np.cumsum(rng.uniform(0.6, 2.5, 40))
    building = np.searchsorted(bounds, depth)
    storeys = rng.uniform(2.5, 9, 41)[np.minimum(building, 40)]
    facade = np.array([jitter(rng, c, 0.06) for c in ((0.75, 0.68, 0.55), (0.60, 0.32, 0.25), (0.62, 0.62, 0.62),
                                                      (0.85, 0.84, 0.80), (0.48, 0.40, 0.32), (0.70, 0.58, 0.45))])
    colors = facade[rng.integers(0, len(facade), 41)[np.minimum(building, 40)]]
    window_w, storey = rng.uniform(0.25, 0.5), rng.uniform(0.7, 1.0)
    windows = (((depth / window_w) % 1 < 0.45) & ((height / storey) % 1 > 0.35)
               & (height > 0.8) & (height < storeys - 0.4))
    colors = np.where(windows[..., None], jitter(rng, (0.18, 0.22, 0.28), 0.05), colors)
    shade = 0.85 + 0.15 * value_noise(rng, canvas.height, canvas.width, 6)
    canvas.paint(toward & (height >= 0) & (height <= storeys), colors * shade[..., None], C["Building"])


def paint_ground(canvas, rng, street):
    """Sidewalks (pale paving with joints) between the building lines and the road edges, and the
    road (dark asphalt) between the edges."""
    h, v = street.height, street.vanish
    paving = jitter(rng, (0.66, 0.64, 0.60), 0.07)
    joints = ((street.height / street.eye(canvas.y)) * 2.5 % 1 < 0.08)[..., None]
    for side in (0, 1):
        walk = polygon(canvas, [(v, street.horizon), (street.road_edge[side], h), (street.building_line[side], h)])
        canvas.paint(walk, np.where(joints, paving * 0.8, paving), C["Sidewalk"])
    asphalt = textured(jitter(rng, (0.36, 0.36, 0.37), 0.06), fractal_noise(rng, h, street.width, 16, 2), 0.25)
    road = polygon(canvas, [(v - 0.5, street.horizon), (v + 0.5, street.horizon), (street.road_edge[1], h),
                            (street.road_edge[0], h)])
    canvas.paint(road, asphalt, C["Road"])


def paint_lane_markings(canvas, rng, street):
    """A dashed centre line and, sometimes, solid lines along both road edges."""
    h = street.height
    eye = street.eye(canvas.y)
    below = canvas.y > street.horizon + 2
    width = 0.012 * (street.road_edge[1] - street.road_edge[0]) * eye / (h - street.horizon)
    centre_x = street.column(street.vanish + rng.uniform(-0.1, 0.1) * street.width, canvas.y)
    dashes = (h / eye * rng.uniform(0.4, 0.8) + rng.uniform()) % 1 < 0.45
    marks = [np.clip(width + 0.5 - np.abs(canvas.x - centre_x), 0, 1) * dashes]
    if rng.random() < 0.5:
        for edge in street.road_edge:
            line_x = street.column(edge + 0.05 * (street.vanish - edge), canvas.y)
            marks.append(np.clip(width + 0.5 - np.abs(canvas.x - line_x), 0, 1))
    color = jitter(rng, [(0.92, 0.92, 0.88), (0.88, 0.76, 0.22)][rng.integers(2)], 0.04)
    canvas.paint(union(*marks) * below, color, C["LaneMkgsDriv"])


# --------------------------------------------------------------------------- objects
def _ground_point(rng, street, lo, hi, far=0.05, near=1.0):
    """A row on the ground, from ``far`` to ``near`` of the way from the horizon to the bottom, and
    a column between the ground lines with bottom columns ``lo`` and ``hi``."""
    y = street.horizon + rng.uniform(far, near) ** 0.7 * (street.height - street.horizon)
    x = street.column(lo, y) + rng.random() * (street.column(hi, y) - street.column(lo, y))
    return x, y


def paint_tree(canvas, rng, street, side):
    x, y = _ground_point(rng, street, street.building_line[side], street.road_edge[side], 0.1)
    eye = street.eye(y)
    trunk_h, radius = rng.uniform(0.9, 1.6) * eye, rng.uniform(0.6, 1.1) * eye
    view = canvas.crop(x - 2.5 * radius, y - trunk_h - 2.5 * radius, x + 2.5 * radius, y + 1)
    view.paint(rectangle(view, x, y - trunk_h / 2, max(1.5, 0.12 * eye), trunk_h), jitter(rng, (0.30, 0.22, 0.15)),
               C["Tree"])
    crown = union(*[disk(view, x + rng.normal(0, 0.4) * radius, y - trunk_h - rng.uniform(0, 0.8) * radius,
                         radius * rng.uniform(0.5, 0.8)) for _ in range(rng.integers(4, 7))])
    leaves = textured(jitter(rng, (0.22, 0.40, 0.16), 0.06), fractal_noise(rng, view.height, view.width, 8, 2), 0.6)
    view.paint(crown, leaves, C["Tree"])


def paint_fence(canvas, rng, street, side):
    """A fence along the building line: half an eye height of slats, over a stretch of the street."""
    line = street.building_line[side]
    ground = street.ground_row(line, canvas.x)
    eye = np.maximum(ground - street.horizon, 1e-3)
    depth = street.height / eye
    start = rng.uniform(1.0, 4.0)
    stretch = (depth > start) & (depth < start + rng.uniform(2, 8))
    toward = (canvas.x < street.vanish) if side == 0 else (canvas.x > street.vanish)
    band = toward & stretch & (canvas.y <= ground) & (canvas.y >= ground - 0.55 * eye)
    slats = ((depth * 6) % 1 < 0.55)[..., None]
    wood = jitter(rng, [(0.45, 0.32, 0.20), (0.55, 0.55, 0.52), (0.20, 0.30, 0.22)][rng.integers(3)])
    canvas.paint(band, np.where(slats, wood, wood * 0.6), C["Fence"])


def paint_pole(canvas, rng, street, side):
    """A pole at the kerb, sometimes carrying a sign (disc, triangle or plate)."""
    edge = street.road_edge[side]
    kerb = edge + 0.08 * (street.building_line[side] - edge)
    x, y = _ground_point(rng, street, kerb, kerb, 0.1)
    eye = street.eye(y)
    top, size = y - rng.uniform(1.8, 3.0) * eye, max(5.0, 0.55 * eye)
    view = canvas.crop(x - size, top - 1, x + size + 1, y + 1)
    view.paint(rectangle(view, x, (y + top) / 2, max(2.0, 0.1 * eye), y - top), jitter(rng, (0.35, 0.35, 0.36)),
               C["Column_Pole"])
    if rng.random() < 0.85:
        sy = top + 0.3 * eye
        shape = rng.integers(3)
        if shape == 0:
            sign = disk(view, x, sy, size / 2)
        elif shape == 1:
            sign = polygon(view, [(x, sy - size / 2), (x + size / 2, sy + size / 2), (x - size / 2, sy + size / 2)])
        else:
            sign = rectangle(view, x, sy, size * 1.3, size * 0.8)
        colors = [(0.80, 0.12, 0.10), (0.10, 0.30, 0.75), (0.95, 0.85, 0.15), (0.10, 0.55, 0.25)]
        view.paint(sign, jitter(rng, colors[rng.integers(4)]), C["SignSymbol"])


def paint_car(canvas, rng, street, x, y):
    """A car seen from behind, standing at ground row y: wheels, body, cabin with a dark rear
    window, red tail lights."""
    eye = street.eye(y)
    width = rng.uniform(0.9, 1.2) * eye
    body_top = y - 0.55 * width
    canvas = canvas.crop(x - 0.6 * width, body_top - 0.35 * width, x + 0.6 * width, y + 1)
    color = jitter(rng, [(0.75, 0.10, 0.10), (0.10, 0.20, 0.60), (0.90, 0.90, 0.90), (0.08, 0.08, 0.09),
                         (0.62, 0.64, 0.66), (0.85, 0.70, 0.10), (0.15, 0.40, 0.25)][rng.integers(7)])
    wheels = union(rectangle(canvas, x - 0.36 * width, y - 0.1 * width, 0.2 * width, 0.2 * width),
                   rectangle(canvas, x + 0.36 * width, y - 0.1 * width, 0.2 * width, 0.2 * width))
    canvas.paint(wheels, (0.05, 0.05, 0.05), C["Car"])
    canvas.paint(rectangle(canvas, x, (y - 0.12 * width + body_top) / 2, width, y - 0.12 * width - body_top),
                 color, C["Car"])
    cabin = [(x - 0.45 * width, body_top), (x + 0.45 * width, body_top), (x + 0.32 * width, body_top - 0.3 * width),
             (x - 0.32 * width, body_top - 0.3 * width)]
    canvas.paint(polygon(canvas, cabin), color * 0.9, C["Car"])
    canvas.paint(rectangle(canvas, x, body_top - 0.14 * width, 0.55 * width, 0.2 * width), (0.12, 0.14, 0.18), C["Car"])
    for side in (-1, 1):
        canvas.paint(rectangle(canvas, x + side * 0.38 * width, body_top + 0.12 * width, 0.14 * width, 0.07 * width),
                     (0.85, 0.10, 0.08), C["Car"])


def paint_person(canvas, rng, street, x, y, label):
    """A standing person (legs, torso, arms, head); for a bicyclist, on a bicycle seen side-on."""
    eye = street.eye(y)
    tall = rng.uniform(0.95, 1.1) * eye
    canvas = canvas.crop(x - 0.6 * tall, y - 1.3 * tall, x + 0.6 * tall, y + 1)
    clothes, trousers = jitter(rng, rng.uniform(0.1, 0.9, 3), 0.0), jitter(rng, (0.15, 0.15, 0.25), 0.1)
    skin = jitter(rng, [(0.90, 0.75, 0.62), (0.62, 0.45, 0.32), (0.40, 0.28, 0.20)][rng.integers(3)], 0.03)
    if label == C["Bicyclist"]:
        wheel = 0.17 * tall
        for dx in (-0.32, 0.32):
            centre = (x + dx * tall, y - wheel)
            ring = disk(canvas, *centre, wheel) * (1 - disk(canvas, *centre, 0.7 * wheel))
            canvas.paint(ring, (0.08, 0.08, 0.08), label)
        canvas.paint(rectangle(canvas, x, y - wheel, 0.64 * tall, max(1.0, 0.04 * tall)), (0.6, 0.1, 0.1), label)
        y = y - 0.25 * tall                                  # the rider sits higher
    leg_w = max(1.0, 0.09 * tall)
    for dx in (-0.06, 0.06):
        canvas.paint(rectangle(canvas, x + dx * tall, y - 0.24 * tall, leg_w, 0.48 * tall), trousers, label)
    canvas.paint(rectangle(canvas, x, y - 0.66 * tall, 0.28 * tall, 0.38 * tall), clothes, label)
    for dx in (-0.17, 0.17):
        canvas.paint(rectangle(canvas, x + dx * tall, y - 0.62 * tall, max(1.0, 0.06 * tall), 0.32 * tall),
                     clothes * 0.85, label)
    canvas.paint(disk(canvas, x, y - 0.92 * tall, 0.09 * tall), skin, label)


def paint_clutter(canvas, rng, street):
    """Unlabelled things: a bin or box on a sidewalk, and sometimes the car's own bonnet."""
    for _ in range(rng.integers(0, 3)):
        side = rng.integers(2)
        x, y = _ground_point(rng, street, street.building_line[side], street.road_edge[side], 0.1)
        size = rng.uniform(0.3, 0.6, 2) * street.eye(y)
        view = canvas.crop(x - size[0], y - size[1] - 1, x + size[0], y + 1)
        view.paint(rectangle(view, x, y - size[1] / 2, *size), jitter(rng, rng.uniform(0.1, 0.9, 3)), C["Void"])
    if rng.random() < 0.25:
        bend = 0.02 * canvas.height * ((canvas.x / canvas.width - 0.5) * 2) ** 2
        bonnet = canvas.y > canvas.height * (1 - rng.uniform(0.04, 0.09)) + bend
        canvas.paint(bonnet, jitter(rng, (0.12, 0.12, 0.14), 0.04), C["Void"])


def paint_traffic(canvas, rng, street):
    """Cars on the road, pedestrians on the sidewalks and bicyclists near the kerb, drawn from the
    farthest to the nearest so nearer ones hide farther ones."""
    things = []
    for _ in range(rng.integers(0, 5)):
        x, y = _ground_point(rng, street, street.road_edge[0] * 0.7 + street.vanish * 0.3,
                             street.road_edge[1] * 0.7 + street.vanish * 0.3, 0.08, 0.75)
        things.append((y, x, "car"))
    for _ in range(rng.integers(1, 5)):
        side = rng.integers(2)
        things.append((*_ground_point(rng, street, street.building_line[side], street.road_edge[side], 0.1)[::-1],
                       "pedestrian"))
    if rng.random() < 0.6:
        side = rng.integers(2)
        edge = street.road_edge[side]
        x, y = _ground_point(rng, street, edge, edge + 0.15 * (street.vanish - edge), 0.15)
        things.append((y, x, "bicyclist"))
    for y, x, kind in sorted(things):
        if kind == "car":
            paint_car(canvas, rng, street, x, y)
        else:
            paint_person(canvas, rng, street, x, y, C["Pedestrian"] if kind == "pedestrian" else C["Bicyclist"])


# --------------------------------------------------------------------------- a frame
def draw_scene(rng, width):
    """One frame: an (H, W, 3) uint8 image and its (H, W) uint8 label, H = 3/4 W."""
    height = int(round(width * 3 / 4))
    canvas = Canvas(height, width, owner=C["Void"])
    street = Street(rng, height, width)
    paint_sky(canvas, rng)
    for side in (0, 1):
        paint_buildings(canvas, rng, street, side)
    paint_ground(canvas, rng, street)
    paint_lane_markings(canvas, rng, street)
    for side in (0, 1):
        if rng.random() < 0.5:
            paint_fence(canvas, rng, street, side)
        for _ in range(rng.integers(0, 3)):
            paint_tree(canvas, rng, street, side)
        for _ in range(rng.integers(1, 3)):
            paint_pole(canvas, rng, street, side)
    paint_clutter(canvas, rng, street)
    paint_traffic(canvas, rng, street)
    if rng.random() < 0.5:                                   # a building's shadow across the street
        x0, x1 = sorted(rng.uniform(-0.2, 1.2, 2) * width)
        canvas.shade(1 - 0.35 * polygon(canvas, [(street.vanish, street.horizon), (x0, height), (x1, height)]))
    canvas.shade(rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, 3))
    canvas.image += rng.normal(0, 0.015, canvas.image.shape).astype(np.float32)
    return canvas.to_uint8(), canvas.owner.astype(np.uint8)


def make_camvid(out, n=300, size=128, seed=0, valid_pct=0.2, progress=None):
    """Write ``n`` CamVid-like frames, ``size`` pixels wide, to ``out`` and return ``out`` as a Path.
    Frame i depends only on (seed, i); the last ``valid_pct`` of the frames form valid.txt.
    ``progress`` wraps the loop over the images (e.g. ``tinygrad_cv.train.progress_bar``, which the command line
    passes); None: no wrapper."""
    params = {"kind": "camvid", "n": int(n), "size": int(size), "seed": int(seed), "valid_pct": valid_pct}
    if is_complete(out, params):
        return Path(out)
    out = prepare(out, ["images", "labels"], stale=["images/synth_*.png", "labels/synth_*_P.png", "valid.txt"])
    names = []
    for i in (progress or iter)(range(n)):
        image, label = draw_scene(np.random.default_rng([seed, i]), size)
        names.append(f"synth_{i:05d}.png")
        write_image(out / "images" / names[-1], image)
        write_mask(out / "labels" / f"synth_{i:05d}_P.png", label, n_classes=len(CAMVID_CODES))
    write_text(out / "codes.txt", "\n".join(CAMVID_CODES) + "\n")
    write_text(out / "valid.txt", "\n".join(names[n - max(1, int(valid_pct * n)):]) + "\n")
    mark_complete(out, params)
    return out
