"""SynthPose: procedural single-person crops with MPII's 16 joints and known identity attributes.

    python -m dphpe_core.cli bench-data --n 2000

Each person is a 3-D kinematic skeleton (anatomically bounded joint angles, varied body
proportions and viewpoint) projected with perspective to 2-D, then drawn with PIL on a 2x
canvas and box-filtered down (anti-aliasing): shaded capsules for limbs, a torso, a head with
hair and facial marks, on a textured, cluttered background. Joints hidden behind a nearer body
part are marked occluded; joints outside the crop are unlabelled, as in MPII.

Three splits: `private` (stands in for MPII), `val` (more of the private domain) and `public`
(stands in for COCO: other backgrounds, palettes, viewpoints and scales). A person appears in
one split only (person ids are disjoint by construction). Everything is drawn from numpy
generators seeded by (version, seed, split, chunk), so a split is the same whatever the worker
count; rendered splits are cached on disk under `cache_dir`, keyed by version, seed and size.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .pckh import J, NUM_JOINTS

GENERATOR_VERSION = 1
SPLITS = {"private": 0, "public": 1, "val": 2}
CHUNK = 256
ATTRIBUTE_NAMES = ("skin_tone", "skin_rgb", "hair_rgb", "top_rgb", "bottom_rgb", "face_mark",
                   "height", "shoulder_width", "limb_length", "girth")
FACE_MARKS = ("none", "glasses", "beard", "mole")


@dataclass(frozen=True)
class Domain:
    """Appearance and pose statistics of one domain."""
    name: str
    textures: tuple[str, ...]       # background families
    hue_center: float               # clothing hue centre and spread (0..1)
    hue_spread: float
    saturation: tuple[float, float]
    value: tuple[float, float]
    frontal_prob: float             # share of near-frontal viewpoints
    fill: tuple[float, float]       # person height / crop height
    zoom_prob: float                # share of crops zoomed in until limbs leave the crop
    roll_deg: float                 # in-plane rotation spread
    distractors: tuple[int, int]    # clutter shapes per crop
    bg_value: tuple[float, float]   # background brightness range (HSV value)
    brightness: float
    activity_weights: tuple[float, ...]


DOMAINS = {
    "private": Domain("private", ("room", "noise", "stripes"), 0.05, 0.18, (0.35, 0.8), (0.35, 0.85),
                      0.65, (0.62, 0.88), 0.12, 12.0, (2, 5), (0.2, 0.75), 0.95, (3, 3, 2, 2, 2, 2)),
    "public": Domain("public", ("noise", "checker", "stripes"), 0.55, 0.3, (0.2, 0.95), (0.5, 1.0),
                     0.45, (0.55, 0.92), 0.18, 20.0, (3, 7), (0.45, 1.0), 1.05, (2, 2, 3, 2, 1, 3)),
}

# Joint angles in degrees: lean, side bend, twist, neck pitch, then per limb (flexion, abduction,
# bend) for right arm, left arm, right leg, left leg. Low/high bounds per activity.
_ACTIVITIES = {  # stand, walk, arms up, reach, squat, sport
    "stand": ([-5, -6, -15, -15, -10, 5, 0, -10, 5, 0, -5, 0, 0, -5, 0, 0],
              [10, 6, 15, 20, 30, 25, 40, 30, 25, 40, 10, 12, 15, 10, 12, 15]),
    "walk": ([-5, -5, -20, -10, -40, 5, 5, -40, 5, 5, -30, 0, 0, -30, 0, 0],
             [15, 5, 20, 20, 40, 20, 60, 40, 20, 60, 40, 10, 60, 40, 10, 60]),
    "arms_up": ([-10, -10, -20, -25, 90, 10, 0, 90, 10, 0, -5, 0, 0, -5, 0, 0],
                [10, 10, 20, 15, 175, 60, 90, 175, 60, 90, 15, 20, 20, 15, 20, 20]),
    "reach": ([0, -15, -30, -20, 20, 0, 0, -30, 0, 0, -10, 0, 0, -10, 0, 0],
              [40, 15, 30, 30, 160, 90, 120, 60, 50, 100, 60, 25, 60, 60, 25, 60]),
    "squat": ([10, -10, -20, -20, -20, 0, 20, -20, 0, 20, 60, 0, 60, 60, 0, 60],
              [45, 10, 20, 20, 100, 40, 130, 100, 40, 130, 115, 35, 140, 115, 35, 140]),
    "sport": ([-20, -25, -45, -30, -40, 0, 0, -40, 0, 0, -25, 0, 0, -25, 0, 0],
              [45, 25, 45, 30, 175, 120, 145, 175, 120, 145, 110, 45, 140, 110, 45, 140]),
}
_ACT_LO = np.array([v[0] for v in _ACTIVITIES.values()], np.float64)
_ACT_HI = np.array([v[1] for v in _ACTIVITIES.values()], np.float64)

# Body segment lengths (fractions of body height) and radii.
_L = dict(torso=0.29, neck=0.05, head=0.13, hip=0.085, shoulder=0.16, uarm=0.17, farm=0.155,
          thigh=0.245, shin=0.245)
_R = dict(uarm=0.032, farm=0.026, thigh=0.05, shin=0.037, neck=0.028, head=0.062, torso=0.11)


def _rot_x(a):  # (..., 3, 3), rotating +y towards +z
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _hsv_to_rgb(h, s, v):
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in
                      [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]], 0)
    return table[i.astype(int), np.arange(len(h))] * 255.0


def sample_people(rng: np.random.Generator, n: int, domain: Domain) -> dict[str, np.ndarray]:
    """Identity attributes and pose parameters for n people (vectorised)."""
    tone = rng.uniform(0, 1, n)
    light, dark = np.array([250, 220, 190.0]), np.array([85, 55, 38.0])
    skin = light + (dark - light) * tone[:, None] + rng.normal(0, 6, (n, 3))
    hair_base = np.array([[25, 20, 18], [90, 55, 30], [200, 160, 90], [150, 60, 30], [170, 170, 170.0]])
    hair = hair_base[rng.integers(0, 5, n)] + rng.normal(0, 10, (n, 3))

    def cloth():
        h = (domain.hue_center + rng.normal(0, domain.hue_spread, n)) % 1.0
        return _hsv_to_rgb(h, rng.uniform(*domain.saturation, n), rng.uniform(*domain.value, n))

    act = rng.choice(len(_ACTIVITIES), n, p=np.array(domain.activity_weights) / sum(domain.activity_weights))
    angles = rng.uniform(_ACT_LO[act], _ACT_HI[act])
    frontal = rng.uniform(size=n) < domain.frontal_prob
    yaw = np.where(frontal, rng.uniform(-50, 50, n), rng.uniform(-180, 180, n))
    return dict(
        skin_tone=tone, skin_rgb=np.clip(skin, 0, 255), hair_rgb=np.clip(hair, 0, 255),
        top_rgb=cloth(), bottom_rgb=cloth(), face_mark=rng.integers(0, len(FACE_MARKS), n),
        height=rng.normal(1.0, 0.06, n).clip(0.8, 1.2), shoulder_width=rng.normal(1.0, 0.1, n).clip(0.7, 1.3),
        limb_length=rng.normal(1.0, 0.06, n).clip(0.8, 1.2), girth=rng.normal(1.0, 0.15, n).clip(0.6, 1.5),
        sleeves=rng.uniform(size=n) < 0.6, trousers=rng.uniform(size=n) < 0.7,
        angles=np.radians(angles), yaw=np.radians(yaw), pitch=np.radians(rng.uniform(-10, 20, n)),
        distance=rng.uniform(3.0, 7.0, n),
        fill=np.where(rng.uniform(size=n) < domain.zoom_prob, rng.uniform(0.95, 1.4, n), rng.uniform(*domain.fill, n)),
        roll=np.radians(np.clip(rng.normal(0, domain.roll_deg, n), -2.5 * domain.roll_deg, 2.5 * domain.roll_deg)),
        shift=rng.uniform(-0.09, 0.09, (n, 2)),
    )


def skeleton_3d(p: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 16, 3) joint positions in body units: x to the person's left, y up, z forward."""
    n = len(p["height"])
    a = p["angles"]
    sw, ll = p["shoulder_width"][:, None], p["limb_length"][:, None]
    j = np.zeros((n, NUM_JOINTS, 3))
    down = np.array([0.0, -1.0, 0.0])
    up = -down
    torso = _rot_y(a[:, 2]) @ _rot_z(a[:, 1]) @ _rot_x(a[:, 0])
    j[:, J["r_hip"]] = [-_L["hip"], 0, 0]
    j[:, J["l_hip"]] = [_L["hip"], 0, 0]
    j[:, J["pelvis"]] = 0.0
    j[:, J["thorax"]] = (torso @ up) * _L["torso"]
    neck = torso @ _rot_x(a[:, 3])
    j[:, J["upper_neck"]] = j[:, J["thorax"]] + (neck @ up) * _L["neck"]
    j[:, J["head_top"]] = j[:, J["upper_neck"]] + (neck @ up) * _L["head"]
    for side, sign, off in (("r", -1.0, 4), ("l", 1.0, 7)):
        sho = j[:, J["thorax"]] + (torso @ np.array([sign * _L["shoulder"], -0.02, 0.0])) * sw
        flex, abd, bend = a[:, off], a[:, off + 1], a[:, off + 2]
        frame = torso @ _rot_z(sign * abd)
        elb = sho + (frame @ _rot_x(-flex) @ down) * _L["uarm"] * ll      # forward flexion
        wri = elb + (frame @ _rot_x(-(flex + bend)) @ down) * _L["farm"] * ll
        j[:, J[f"{side}_shoulder"]], j[:, J[f"{side}_elbow"]], j[:, J[f"{side}_wrist"]] = sho, elb, wri
    for side, sign, off in (("r", -1.0, 10), ("l", 1.0, 13)):
        hip = j[:, J[f"{side}_hip"]]
        flex, abd, bend = a[:, off], a[:, off + 1], a[:, off + 2]
        frame = _rot_z(sign * abd)
        kne = hip + (frame @ _rot_x(-flex) @ down) * _L["thigh"] * ll
        ank = kne + (frame @ _rot_x(-(flex - bend)) @ down) * _L["shin"] * ll  # knees bend back
        j[:, J[f"{side}_knee"]], j[:, J[f"{side}_ankle"]] = kne, ank
    return j * p["height"][:, None, None]


# Body parts drawn as capsules: (name, joint a, joint b, radius key, colour key).
_PARTS = (
    ("r_thigh", "r_hip", "r_knee", "thigh", "bottom"), ("l_thigh", "l_hip", "l_knee", "thigh", "bottom"),
    ("r_shin", "r_knee", "r_ankle", "shin", "legs"), ("l_shin", "l_knee", "l_ankle", "shin", "legs"),
    ("torso", "pelvis", "thorax", "torso", "top"), ("neck", "thorax", "upper_neck", "neck", "skin"),
    ("r_uarm", "r_shoulder", "r_elbow", "uarm", "arms"), ("l_uarm", "l_shoulder", "l_elbow", "uarm", "arms"),
    ("r_farm", "r_elbow", "r_wrist", "farm", "skin"), ("l_farm", "l_elbow", "l_wrist", "farm", "skin"),
    ("head", "upper_neck", "head_top", "head", "skin"),
)
_PART_A = np.array([J[p[1]] for p in _PARTS])
_PART_B = np.array([J[p[2]] for p in _PARTS])
_PART_R = np.array([_R[p[3]] for p in _PARTS])
# joints a part may cover without hiding them (its own joints, and the torso's shoulders/hips)
_OWN = np.zeros((len(_PARTS), NUM_JOINTS), bool)
for _k, _p in enumerate(_PARTS):
    _OWN[_k, [J[_p[1]], J[_p[2]]]] = True
_OWN[4, [J["r_shoulder"], J["l_shoulder"], J["r_hip"], J["l_hip"]]] = True


def project(p: dict[str, np.ndarray], joints3d: np.ndarray, height: int, width: int):
    """Perspective view of the skeletons placed in (height, width) crops.

    Returns joints (n, 16, 2) in crop pixels, depth (n, 16) (larger is nearer), pixels per body
    unit (n,), and the 3-D head direction's z (n,) (> 0: the face is towards the camera).
    """
    view = _rot_x(p["pitch"]) @ _rot_y(p["yaw"])
    cam = joints3d @ np.swapaxes(view, -1, -2)                     # (n, 16, 3)
    persp = 1.0 / (p["distance"][:, None] - cam[..., 2])          # (n, 16)
    xy = np.stack([cam[..., 0], -cam[..., 1]], -1) * (persp * p["distance"][:, None])[..., None]
    lo, hi = xy.min(axis=1), xy.max(axis=1)
    extent = (hi[:, 1] - lo[:, 1]) + 2 * _R["head"] * p["height"]  # body height in view units
    ppu = p["fill"] * height / np.maximum(extent, 0.3)              # pixels per unit
    c, s = np.cos(p["roll"]), np.sin(p["roll"])
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    centre = (lo + hi) / 2
    uv = ((xy - centre[:, None]) @ np.swapaxes(rot, -1, -2)) * ppu[:, None, None]
    uv += (np.array([(width - 1) / 2, (height - 1) / 2]) + p["shift"] * np.array([width, height]))[:, None]
    facing = (view @ np.array([0.0, 0.0, 1.0]))[:, 2]
    return uv, cam[..., 2], ppu, facing


def occlusion(uv, depth, ppu, girth) -> np.ndarray:
    """(n, 16) True where a nearer body part covers the joint in the image."""
    a, b = uv[:, _PART_A], uv[:, _PART_B]                          # (n, P, 2)
    za, zb = depth[:, _PART_A], depth[:, _PART_B]
    ab = b - a
    rel = uv[:, :, None, :] - a[:, None]                           # (n, 16, P, 2)
    t = np.clip((rel * ab[:, None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9)[:, None], 0, 1)
    dist = np.linalg.norm(rel - t[..., None] * ab[:, None], axis=-1)
    zpart = za[:, None] + t * (zb - za)[:, None]
    radius = (_PART_R[None] * girth[:, None] * ppu[:, None])[:, None]
    covered = (dist < 0.85 * radius) & (zpart > depth[:, :, None] + 0.02) & ~_OWN.T[None]
    return covered.any(-1)


def head_boxes(uv, ppu, height_factor) -> np.ndarray:
    """Axis-aligned square around the head, side = the head's true (unforeshortened) length."""
    mid = (uv[:, J["upper_neck"]] + uv[:, J["head_top"]]) / 2
    half = 0.5 * _L["head"] * height_factor * ppu
    return np.concatenate([mid - half[:, None], mid + half[:, None]], axis=1)


class _Textures:
    """A bank of background textures per domain, drawn once per worker process."""

    def __init__(self, domain: Domain, h: int, w: int, seed: int, count: int = 24):
        rng = np.random.default_rng([GENERATOR_VERSION, seed, 99, 0 if domain.name == "private" else 1])
        self.out_h, self.out_w = h, w
        self.h, self.w = h + h // 2, w + w // 2
        self.bank = [self._make(rng, domain.textures[i % len(domain.textures)], domain) for i in range(count)]

    def _noise(self, rng, cells):
        out = np.zeros((self.h, self.w))
        for k, c in enumerate(cells):
            small = Image.fromarray((rng.uniform(0, 255, (c, max(2, int(c * 0.75))))).astype(np.uint8))
            out += np.asarray(small.resize((self.w, self.h), Image.Resampling.BICUBIC), np.float64) / (k + 1)
        return (out - out.min()) / max(np.ptp(out), 1e-9)

    def _make(self, rng, kind: str, d: Domain) -> np.ndarray:
        base = _hsv_to_rgb(rng.uniform(0, 1, 2), rng.uniform(0.1, 0.6, 2), rng.uniform(*d.bg_value, 2))
        yy, xx = np.mgrid[0:self.h, 0:self.w].astype(np.float64)
        if kind == "noise":
            m = self._noise(rng, (3, 7, 17, 37))
        elif kind == "stripes":
            th = rng.uniform(0, np.pi)
            m = 0.5 + 0.5 * np.sin((xx * np.cos(th) + yy * np.sin(th)) / rng.uniform(3, 14))
            m = 0.7 * m + 0.3 * self._noise(rng, (5, 23))
        elif kind == "checker":
            th, size = rng.uniform(0, np.pi / 2), rng.uniform(10, 40)
            u, v = xx * np.cos(th) - yy * np.sin(th), xx * np.sin(th) + yy * np.cos(th)
            m = ((np.floor(u / size) + np.floor(v / size)) % 2) * 0.7 + 0.3 * self._noise(rng, (9, 31))
        else:  # room: wall above a floor, lit unevenly
            horizon = rng.uniform(0.45, 0.8) * self.h
            m = np.where(yy < horizon, 0.3 + 0.4 * yy / self.h, 0.9 - 0.3 * (yy - horizon) / self.h)
            m = 0.75 * m + 0.25 * self._noise(rng, (4, 13, 41))
        img = base[0] + (base[1] - base[0]) * m[..., None]
        return np.clip(img * d.brightness, 0, 255).astype(np.uint8)

    def sample(self, rng) -> Image.Image:
        t = self.bank[rng.integers(len(self.bank))]
        y, x = rng.integers(0, self.h - self.out_h + 1), rng.integers(0, self.w - self.out_w + 1)
        return Image.fromarray(t[y:y + self.out_h, x:x + self.out_w])


def _shade(rgb, f):
    return tuple(int(min(255, max(0, c * f))) for c in rgb)


_SHADES = np.array([0.6, 1.0, 1.3, 0.85])  # rim, body, highlight, flat fill


def _palette(person: dict, i: int) -> dict[str, list]:
    """Per colour key of one person: [rim, body, highlight, flat] RGB tuples."""
    keys = dict(skin=person["skin_rgb"][i], top=person["top_rgb"][i], bottom=person["bottom_rgb"][i],
                arms=person["top_rgb"][i] if person["sleeves"][i] else person["skin_rgb"][i],
                legs=person["bottom_rgb"][i] if person["trousers"][i] else person["skin_rgb"][i])
    return {k: [tuple(c) for c in np.clip(v[None] * _SHADES[:, None], 0, 255).astype(int).tolist()]
            for k, v in keys.items()}


def _capsule(draw, a, b, r, shades):
    """A limb: dark rim, body colour, and a highlight offset towards the light (up-left)."""
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    w = max(2, int(round(2 * r)))
    rim, body, high = shades[0], shades[1], shades[2]
    for (x, y) in ((ax, ay), (bx, by)):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rim)
    draw.line([(ax, ay), (bx, by)], fill=rim, width=w)
    draw.line([(ax, ay), (bx, by)], fill=body, width=max(1, int(w * 0.7)))
    dx, dy = bx - ax, by - ay
    n = math.hypot(dx, dy) or 1.0
    px, py = -dy / n, dx / n
    if py > 0 or (py == 0 and px > 0):
        px, py = -px, -py
    o = 0.22 * r
    draw.line([(ax + px * o, ay + py * o), (bx + px * o, by + py * o)], fill=high,
              width=max(1, int(w * 0.25)))


def _draw_head(draw, centre, r, person, i, facing):
    cx, cy = centre
    skin, hair = tuple(person["skin_rgb"][i].astype(int)), tuple(person["hair_rgb"][i].astype(int))
    draw.ellipse([cx - r * 1.05, cy - r * 1.1, cx + r * 1.05, cy + r * 1.1], fill=_shade(skin, 0.65))
    draw.ellipse([cx - r, cy - r * 1.05, cx + r, cy + r * 1.05], fill=skin)
    if facing[i] <= 0.1:  # seen from behind: hair only
        draw.ellipse([cx - r, cy - r * 1.05, cx + r, cy + r * 0.9], fill=hair)
        return
    draw.chord([cx - r, cy - r * 1.1, cx + r, cy + r * 0.6], 180, 360, fill=hair)
    ex, ey = 0.38 * r, -0.05 * r
    for s in (-1, 1):
        draw.ellipse([cx + s * ex - 0.12 * r, cy + ey - 0.12 * r, cx + s * ex + 0.12 * r, cy + ey + 0.12 * r], fill=(20, 20, 25))
    mark = person["face_mark"][i]
    if mark == 1:
        for s in (-1, 1):
            draw.ellipse([cx + s * ex - 0.3 * r, cy + ey - 0.28 * r, cx + s * ex + 0.3 * r, cy + ey + 0.28 * r],
                         outline=(30, 30, 30), width=max(1, int(0.1 * r)))
    elif mark == 2:
        draw.chord([cx - 0.8 * r, cy - 0.2 * r, cx + 0.8 * r, cy + 1.05 * r], 0, 180, fill=_shade(hair, 0.8))
    elif mark == 3:
        draw.ellipse([cx + 0.3 * r, cy + 0.35 * r, cx + 0.45 * r, cy + 0.5 * r], fill=(60, 30, 20))
    draw.line([(cx - 0.25 * r, cy + 0.55 * r), (cx + 0.25 * r, cy + 0.55 * r)], fill=(120, 40, 40), width=max(1, int(0.1 * r)))


def _clutter(draw, rng, n, w, h):
    for _ in range(n):
        rgb = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        s = rng.uniform(0.05, 0.3) * w
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x - s, y - s * 0.7, x + s, y + s * 0.7], fill=rgb)
        elif kind == 1:
            draw.rectangle([x - s, y - s, x + s * 0.5, y + s * 1.5], fill=rgb)
        else:  # limb-like sticks, the hard case for a pose model
            ang = rng.uniform(0, np.pi)
            draw.line([(x, y), (x + 2 * s * np.cos(ang), y + 2 * s * np.sin(ang))], fill=rgb, width=int(max(2, s * 0.25)))


def render_chunk(split: str, chunk: int, count: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """Render people chunk*CHUNK ... chunk*CHUNK+count-1 of a split; deterministic in its arguments."""
    domain = DOMAINS["public" if split == "public" else "private"]
    rng = np.random.default_rng([GENERATOR_VERSION, seed, SPLITS[split], chunk])
    person = sample_people(rng, count, domain)
    j3 = skeleton_3d(person)
    uv, depth, ppu, facing = project(person, j3, height, width)
    occluded = occlusion(uv, depth, ppu, person["girth"])
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= height - 1)
    textures = _textures(domain, 2 * height, 2 * width, seed)
    images = np.empty((count, height, width, 3), np.uint8)
    order = np.argsort((depth[:, _PART_A] + depth[:, _PART_B]), axis=1)  # far parts first
    for i in range(count):
        canvas = textures.sample(rng)
        draw = ImageDraw.Draw(canvas)
        _clutter(draw, rng, int(rng.integers(*domain.distractors)), 2 * width, 2 * height)
        p2 = uv[i] * 2 + 0.5
        colours = _palette(person, i)
        for k in order[i]:
            name, _, _, rkey, ckey = _PARTS[k]
            r = _R[rkey] * person["girth"][i] * ppu[i] * 2
            if name == "head":
                r = _R["head"] * person["height"][i] * ppu[i] * 2
                _draw_head(draw, p2[[8, 9]].mean(0), r, person, i, facing)
            elif name == "torso":
                quad = p2[[J["r_shoulder"], J["l_shoulder"], J["l_hip"], J["r_hip"]]]
                draw.polygon([tuple(q) for q in quad], fill=colours["top"][3])
                _capsule(draw, p2[_PART_A[k]], p2[_PART_B[k]], r * 0.8, colours["top"])
                _capsule(draw, p2[J["r_hip"]], p2[J["l_hip"]], r * 0.45, colours["bottom"])
            else:
                _capsule(draw, p2[_PART_A[k]], p2[_PART_B[k]], r, colours[ckey])
        images[i] = np.asarray(canvas.reduce(2))
    noise = rng.integers(-4, 5, images.shape, dtype=np.int16)  # sensor noise, cheap to draw
    images = np.clip(images + noise, 0, 255).astype(np.uint8)
    attrs = {k: np.asarray(person[k], np.float32) for k in ATTRIBUTE_NAMES if k != "face_mark"}
    attrs["face_mark"] = person["face_mark"].astype(np.int64)
    return dict(images=images, joints=uv.astype(np.float32), joints_vis=inside.astype(np.float32),
                visible=(inside & ~occluded).astype(np.float32),
                head_box=head_boxes(uv, ppu, person["height"]).astype(np.float32),
                person_id=(SPLITS[split] << 40) + chunk * CHUNK + np.arange(count, dtype=np.int64),
                **{f"attr_{k}": v for k, v in attrs.items()})


_TEXTURE_CACHE: dict = {}


def _textures(domain: Domain, h: int, w: int, seed: int) -> _Textures:
    key = (domain.name, h, w, seed)
    if key not in _TEXTURE_CACHE:
        _TEXTURE_CACHE[key] = _Textures(domain, h, w, seed)
    return _TEXTURE_CACHE[key]


def render_split(split: str, n: int, *, height: int, width: int, seed: int = 0, workers: int = 0,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """Render n crops of a split; `workers` processes (0: all cores). Same result for any count."""
    if split not in SPLITS:
        raise ValueError(f"unknown SynthPose split {split!r}; expected one of {list(SPLITS)}")
    if n < 1:
        raise ValueError(f"SynthPose split {split!r} must have at least one crop, got n={n}")
    jobs = [(split, c, min(CHUNK, n - c * CHUNK), height, width, seed) for c in range(math.ceil(n / CHUNK))]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1 or len(jobs) == 1:
        parts = [render_chunk(*job) for job in _progress(jobs, progress, split)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(_progress(pool.map(render_chunk, *zip(*jobs)), progress, split, total=len(jobs)))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _progress(it, on: bool, split: str, total: int | None = None):
    """A bar on a terminal; elsewhere (a log file) one line, so that logs stay readable."""
    import sys
    if not on:
        return it
    if not sys.stderr.isatty():
        print(f"rendering SynthPose {split} ({total or len(it)} chunks of {CHUNK} crops)", flush=True)
        return it
    from tqdm.auto import tqdm
    return tqdm(it, total=total, desc=f"SynthPose {split}", unit="chunk", leave=False)


def cache_path(cache_dir: str, split: str, n: int, height: int, width: int, seed: int) -> Path:
    return Path(cache_dir).expanduser() / "synthpose" / f"v{GENERATOR_VERSION}-{split}-s{seed}-n{n}-{height}x{width}"


def load_split(split: str, n: int, *, height: int, width: int, seed: int, cache_dir: str,
               progress: bool = True) -> dict[str, np.ndarray]:
    """A rendered split, from the disk cache when present (images memory-mapped), else rendered and stored."""
    path = cache_path(cache_dir, split, n, height, width, seed)
    done = path / "complete"
    if not done.exists():
        data = render_split(split, n, height=height, width=width, seed=seed, progress=progress)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for k, v in data.items():
            np.save(tmp / f"{k}.npy", v)
        (tmp / MANIFEST).write_text(json.dumps(_manifest(data, split=split, n=n, seed=seed), indent=1, sort_keys=True))
        (tmp / "complete").write_text("ok\n")
        try:
            tmp.rename(path)
        except OSError:  # another process finished first; its copy is identical
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return _read_cache(path, split=split, n=n, height=height, width=width, seed=seed)


MANIFEST = "manifest.json"


def _manifest(data: dict, *, split: str, n: int, seed: int) -> dict:
    """What a cache folder holds: the generator's version, the split and every array's shape and dtype."""
    return {"generator_version": GENERATOR_VERSION, "split": split, "n": n, "seed": seed,
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in data.items()}}


def _read_cache(path: Path, *, split: str, n: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """The cache folder's arrays, checked against its manifest (written with the folder; a folder from
    before manifests gets one once its arrays pass the checks); a corrupt or mismatched cache names the
    file and says how to rebuild it."""
    def corrupt(what: str) -> ValueError:
        return ValueError(f"SynthPose cache {path}: {what}; delete that folder and run again to render it anew")

    data = {}
    for f in sorted(path.glob("*.npy")):
        try:
            data[f.stem] = np.load(f, mmap_mode="r" if f.stem == "images" else None)
        except (OSError, ValueError, EOFError) as e:
            raise corrupt(f"{f.name} cannot be read ({e})") from None
    if "images" not in data or tuple(data["images"].shape[:3]) != (n, height, width):          # (n, H, W, 3)
        raise corrupt(f"images have shape {getattr(data.get('images'), 'shape', None)}; expected {n} crops of "
                      f"{height}x{width}")
    short = {k: v.shape[0] for k, v in data.items() if v.shape[0] != n}
    if short:
        raise corrupt(f"arrays {short} do not hold {n} rows")
    found = _manifest(data, split=split, n=n, seed=seed)
    manifest = path / MANIFEST
    if not manifest.is_file():
        try:
            manifest.write_text(json.dumps(found, indent=1, sort_keys=True))
        except OSError:
            pass                      # a read-only cache is still checked above
        return data
    try:
        stored = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        raise corrupt(f"{MANIFEST} cannot be read ({e})") from None
    if stored != found:
        diff = sorted(k for k in set(stored) | set(found) if stored.get(k) != found.get(k))
        raise corrupt(f"its arrays disagree with {MANIFEST} in {diff}")
    return data
