"""Write a small MPII-format dataset of drawn stick figures with known joints.

Layout (the same as real MPII under mmpose)::

    <root>/images/000000001.jpg ...
    <root>/annotations/mpii_train.json
    <root>/annotations/mpii_val.json
    <root>/annotations/mpii_gt_val.mat
        (jnt_missing, pos_gt_src, headboxes_src)

Coordinates in the JSON and the .mat are 1-based (MATLAB), as in MPII: a joint
drawn at pixel (x, y) is stored as (x + 1, y + 1).
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from scipy.io import savemat

#: MPII joint order.
JOINT_NAMES = (
    'right_ankle',
    'right_knee',
    'right_hip',
    'left_hip',
    'left_knee',
    'left_ankle',
    'pelvis',
    'thorax',
    'upper_neck',
    'head_top',
    'right_wrist',
    'right_elbow',
    'right_shoulder',
    'left_shoulder',
    'left_elbow',
    'left_wrist',
)
LIMBS = (
    (0, 1),
    (1, 2),
    (2, 6),
    (3, 6),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (7, 12),
    (12, 11),
    (11, 10),
    (7, 13),
    (13, 14),
    (14, 15),
)


def _unit(deg):
    rad = np.deg2rad(deg)
    return np.array([np.sin(rad), np.cos(rad)])  # 0 deg points down (+y)


def random_pose(rng, height):
    """16 joints (x, y) of a front-facing figure of the given height, with
    the pelvis at 0.

    The figure's right side is on the image's left, as for a person facing the
    camera, so horizontal flips keep the usual left/right convention.
    """
    j = np.zeros((16, 2))
    tilt = rng.uniform(-12, 12)
    up = -_unit(tilt)
    j[7] = 0.30 * height * up  # thorax
    j[8] = j[7] + 0.06 * height * up  # upper neck
    j[9] = j[8] + 0.13 * height * up  # head top
    side = np.array([-up[1], up[0]])  # image-right of the torso
    for sign, hip, sho in ((-1, 2, 12), (1, 3, 13)):
        j[hip] = sign * 0.08 * height * side
        j[sho] = j[7] + sign * 0.11 * height * side
    limbs = (
        (12, 11, 10, 0.15, 0.14, (-20, 110), (-10, 100)),
        (13, 14, 15, 0.15, 0.14, (-20, 110), (-10, 100)),
        (2, 1, 0, 0.22, 0.22, (-5, 35), (-25, 15)),
        (3, 4, 5, 0.22, 0.22, (-5, 35), (-25, 15)),
    )
    for root, mid, end, l1, l2, a1, a2 in limbs:
        # The figure's right limbs point outward to the image's left.
        sign = -1 if root in (12, 2) else 1
        ang1 = tilt + sign * rng.uniform(*a1)
        ang2 = ang1 + sign * rng.uniform(*a2)
        j[mid] = j[root] + l1 * height * _unit(ang1)
        j[end] = j[mid] + l2 * height * _unit(ang2)
    return j


def draw_figure(img, joints):
    """Draw limbs and joints; each joint has its own colour."""
    thick = max(2, int(round(0.025 * np.ptp(joints[:, 1]))))
    for a, b in LIMBS:
        pa, pb = (tuple(int(round(v)) for v in joints[k]) for k in (a, b))
        cv2.line(img, pa, pb, (200, 200, 200), thick, cv2.LINE_AA)
    head = joints[[8, 9]].mean(0)
    radius = int(0.45 * np.linalg.norm(joints[9] - joints[8]))
    cv2.circle(
        img,
        tuple(int(round(v)) for v in head),
        radius,
        (180, 180, 240),
        -1,
        cv2.LINE_AA,
    )
    for k, p in enumerate(joints):
        hue = int(180 * k / 16)
        color = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2BGR)
        cv2.circle(
            img,
            tuple(int(round(v)) for v in p),
            thick + 1,
            tuple(int(c) for c in color[0, 0]),
            -1,
            cv2.LINE_AA,
        )


def make_sample(rng, image_size):
    """Return (image, joints 0-based (16, 2), head box 0-based [[x1, y1], [x2,
    y2]])."""
    height = rng.uniform(0.55, 0.75) * image_size
    joints = random_pose(rng, height)
    lo, hi = joints.min(0), joints.max(0)
    margin = 0.08 * image_size
    offset = rng.uniform(margin - lo, image_size - margin - hi)
    joints = joints + offset
    base = rng.integers(0, 90, size=3)
    img = np.empty((image_size, image_size, 3), np.uint8)
    img[:] = base
    noise = rng.integers(0, 40, size=img.shape, dtype=np.uint8)
    img = cv2.add(img, noise)
    draw_figure(img, joints)
    head_len = np.linalg.norm(joints[9] - joints[8])
    mid = joints[[8, 9]].mean(0)
    headbox = np.stack([mid - 0.5 * head_len, mid + 0.5 * head_len])
    return img, joints, headbox


def _annotation(name, joints, visible):
    lo, hi = joints.min(0), joints.max(0)
    center = (lo + hi) / 2
    return dict(
        image=name,
        center=[float(v) for v in center + 1],
        scale=float(1.1 * (hi - lo).max() / 200.0),
        joints=[[float(x + 1), float(y + 1)] for x, y in joints],
        joints_vis=[int(v) for v in visible],
    )


def make_mpii_fixture(
    root, num_train=64, num_val=32, image_size=128, invisible_prob=0.05, seed=0
):
    """Write the dataset under ``root`` and return its annotation paths."""
    root = Path(root)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = {'train': [], 'val': []}
    val_joints, val_vis, val_heads = [], [], []
    for i in range(num_train + num_val):
        split = 'train' if i < num_train else 'val'
        img, joints, headbox = make_sample(rng, image_size)
        visible = (rng.random(16) >= invisible_prob).astype(int)
        name = f'{i + 1:09d}.jpg'
        cv2.imwrite(
            str(root / 'images' / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        splits[split].append(_annotation(name, joints, visible))
        if split == 'val':
            val_joints.append(joints + 1)
            val_vis.append(visible)
            val_heads.append(headbox + 1)
    paths = {}
    for split, anns in splits.items():
        paths[split] = root / 'annotations' / f'mpii_{split}.json'
        paths[split].write_text(json.dumps(anns))
    # Official layout: joints x coords x samples, as in MPII's mpii_gt_val.mat.
    paths['headbox'] = root / 'annotations' / 'mpii_gt_val.mat'
    savemat(
        str(paths['headbox']),
        {
            'dataset_joints': np.array(
                [[n] for n in JOINT_NAMES], dtype=object
            ).T,
            'jnt_missing': 1 - np.stack(val_vis, axis=1).astype(np.float64),
            'pos_gt_src': np.stack(val_joints, axis=2).astype(np.float64),
            'headboxes_src': np.stack(val_heads, axis=2).astype(np.float64),
        },
    )
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder, e.g. data/mpii_synthetic')
    parser.add_argument('--num-train', type=int, default=256)
    parser.add_argument('--num-val', type=int, default=64)
    parser.add_argument('--image-size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_mpii_fixture(
        args.root,
        args.num_train,
        args.num_val,
        args.image_size,
        seed=args.seed,
    )
    for key, path in paths.items():
        print(f'{key}: {path}')


if __name__ == '__main__':
    main()
