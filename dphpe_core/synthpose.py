"""SynthPose: procedural single-person crops with MPII's 16 joints and known identity attributes.

    python -m dphpe_core.cli bench-data --n 2000

Each person is a 3-D kinematic skeleton (anatomically bounded joint angles, varied body
proportions and viewpoint) projected with perspective to 2-D (body.py), then drawn with PIL on a 2x
canvas and box-filtered down (anti-aliasing): shaded capsules for limbs, a torso, a head with
hair and facial marks, on a textured, cluttered background. Joints hidden behind a nearer body
part are marked occluded; joints outside the crop are unlabelled, as in MPII.

Three splits: `private` (stands in for MPII), `val` (more of the private domain) and `public`
(stands in for COCO: other backgrounds, palettes, viewpoints and scales). A person appears in
one split only (person ids are disjoint by construction). Everything is drawn from numpy
generators seeded by (version, seed, split, chunk), so a split is the same whatever the worker
count; rendered splits are cached on disk under `cache_dir`, keyed by version, seed and size
(synthcache.py).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

from .body import (ATTRIBUTE_NAMES, DOMAINS, PART_A, PART_B, PARTS, RADII, Domain, head_boxes, hsv_to_rgb, occlusion,
                   project, sample_people, skeleton_3d)
from .pckh import J

GENERATOR_VERSION = 1
SPLITS = {"private": 0, "public": 1, "val": 2}
CHUNK = 256


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
        base = hsv_to_rgb(rng.uniform(0, 1, 2), rng.uniform(0.1, 0.6, 2), rng.uniform(*d.bg_value, 2))
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
    order = np.argsort((depth[:, PART_A] + depth[:, PART_B]), axis=1)  # far parts first
    for i in range(count):
        canvas = textures.sample(rng)
        draw = ImageDraw.Draw(canvas)
        _clutter(draw, rng, int(rng.integers(*domain.distractors)), 2 * width, 2 * height)
        p2 = uv[i] * 2 + 0.5
        colours = _palette(person, i)
        for k in order[i]:
            name, _, _, rkey, ckey = PARTS[k]
            r = RADII[rkey] * person["girth"][i] * ppu[i] * 2
            if name == "head":
                r = RADII["head"] * person["height"][i] * ppu[i] * 2
                _draw_head(draw, p2[[8, 9]].mean(0), r, person, i, facing)
            elif name == "torso":
                quad = p2[[J["r_shoulder"], J["l_shoulder"], J["l_hip"], J["r_hip"]]]
                draw.polygon([tuple(q) for q in quad], fill=colours["top"][3])
                _capsule(draw, p2[PART_A[k]], p2[PART_B[k]], r * 0.8, colours["top"])
                _capsule(draw, p2[J["r_hip"]], p2[J["l_hip"]], r * 0.45, colours["bottom"])
            else:
                _capsule(draw, p2[PART_A[k]], p2[PART_B[k]], r, colours[ckey])
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


