"""SynthPose's people: who they are (identity attributes, sampled per domain), how they stand (a 3-D
kinematic skeleton with anatomically bounded joint angles per activity) and how the camera sees them
(perspective projection into the crop, which joints a nearer body part hides, the head box).

    python -c "from dphpe_core.body import DOMAINS; print(list(DOMAINS))"

Pure numpy, vectorised over people; the drawing is synthpose.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pckh import J, NUM_JOINTS

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
LENGTHS = dict(torso=0.29, neck=0.05, head=0.13, hip=0.085, shoulder=0.16, uarm=0.17, farm=0.155,
          thigh=0.245, shin=0.245)
RADII = dict(uarm=0.032, farm=0.026, thigh=0.05, shin=0.037, neck=0.028, head=0.062, torso=0.11)


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


def hsv_to_rgb(h, s, v):
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
        return hsv_to_rgb(h, rng.uniform(*domain.saturation, n), rng.uniform(*domain.value, n))

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
    j[:, J["r_hip"]] = [-LENGTHS["hip"], 0, 0]
    j[:, J["l_hip"]] = [LENGTHS["hip"], 0, 0]
    j[:, J["pelvis"]] = 0.0
    j[:, J["thorax"]] = (torso @ up) * LENGTHS["torso"]
    neck = torso @ _rot_x(a[:, 3])
    j[:, J["upper_neck"]] = j[:, J["thorax"]] + (neck @ up) * LENGTHS["neck"]
    j[:, J["head_top"]] = j[:, J["upper_neck"]] + (neck @ up) * LENGTHS["head"]
    for side, sign, off in (("r", -1.0, 4), ("l", 1.0, 7)):
        sho = j[:, J["thorax"]] + (torso @ np.array([sign * LENGTHS["shoulder"], -0.02, 0.0])) * sw
        flex, abd, bend = a[:, off], a[:, off + 1], a[:, off + 2]
        frame = torso @ _rot_z(sign * abd)
        elb = sho + (frame @ _rot_x(-flex) @ down) * LENGTHS["uarm"] * ll      # forward flexion
        wri = elb + (frame @ _rot_x(-(flex + bend)) @ down) * LENGTHS["farm"] * ll
        j[:, J[f"{side}_shoulder"]], j[:, J[f"{side}_elbow"]], j[:, J[f"{side}_wrist"]] = sho, elb, wri
    for side, sign, off in (("r", -1.0, 10), ("l", 1.0, 13)):
        hip = j[:, J[f"{side}_hip"]]
        flex, abd, bend = a[:, off], a[:, off + 1], a[:, off + 2]
        frame = _rot_z(sign * abd)
        kne = hip + (frame @ _rot_x(-flex) @ down) * LENGTHS["thigh"] * ll
        ank = kne + (frame @ _rot_x(-(flex - bend)) @ down) * LENGTHS["shin"] * ll  # knees bend back
        j[:, J[f"{side}_knee"]], j[:, J[f"{side}_ankle"]] = kne, ank
    return j * p["height"][:, None, None]


# Body parts drawn as capsules: (name, joint a, joint b, radius key, colour key).
PARTS = (
    ("r_thigh", "r_hip", "r_knee", "thigh", "bottom"), ("l_thigh", "l_hip", "l_knee", "thigh", "bottom"),
    ("r_shin", "r_knee", "r_ankle", "shin", "legs"), ("l_shin", "l_knee", "l_ankle", "shin", "legs"),
    ("torso", "pelvis", "thorax", "torso", "top"), ("neck", "thorax", "upper_neck", "neck", "skin"),
    ("r_uarm", "r_shoulder", "r_elbow", "uarm", "arms"), ("l_uarm", "l_shoulder", "l_elbow", "uarm", "arms"),
    ("r_farm", "r_elbow", "r_wrist", "farm", "skin"), ("l_farm", "l_elbow", "l_wrist", "farm", "skin"),
    ("head", "upper_neck", "head_top", "head", "skin"),
)
PART_A = np.array([J[p[1]] for p in PARTS])
PART_B = np.array([J[p[2]] for p in PARTS])
PART_R = np.array([RADII[p[3]] for p in PARTS])
# joints a part may cover without hiding them (its own joints, and the torso's shoulders/hips)
_OWN = np.zeros((len(PARTS), NUM_JOINTS), bool)
for _k, _p in enumerate(PARTS):
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
    extent = (hi[:, 1] - lo[:, 1]) + 2 * RADII["head"] * p["height"]  # body height in view units
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
    a, b = uv[:, PART_A], uv[:, PART_B]                          # (n, P, 2)
    za, zb = depth[:, PART_A], depth[:, PART_B]
    ab = b - a
    rel = uv[:, :, None, :] - a[:, None]                           # (n, 16, P, 2)
    t = np.clip((rel * ab[:, None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9)[:, None], 0, 1)
    dist = np.linalg.norm(rel - t[..., None] * ab[:, None], axis=-1)
    zpart = za[:, None] + t * (zb - za)[:, None]
    radius = (PART_R[None] * girth[:, None] * ppu[:, None])[:, None]
    covered = (dist < 0.85 * radius) & (zpart > depth[:, :, None] + 0.02) & ~_OWN.T[None]
    return covered.any(-1)


def head_boxes(uv, ppu, height_factor) -> np.ndarray:
    """Axis-aligned square around the head, side = the head's true (unforeshortened) length."""
    mid = (uv[:, J["upper_neck"]] + uv[:, J["head_top"]]) / 2
    half = 0.5 * LENGTHS["head"] * height_factor * ppu
    return np.concatenate([mid - half[:, None], mid + half[:, None]], axis=1)
