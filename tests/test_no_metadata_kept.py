"""What anonymize must not carry over: the source's metadata. A phone's video names where and
when it was shot and the phone that shot it, and its photos hold the same in EXIF; an
anonymised copy that kept them would give away what the pixelation hides. The outputs carry
none of it (only what facecam itself writes: its encoder, a note that a frame rate was assumed)."""

from __future__ import annotations

import av
import cv2
import pytest
from conftest import draw_face_frame, run_cli

SOURCE_TAGS = {
    "location": "+48.8584+002.2945/",
    "make": "Apple",
    "model": "iPhone 15",
    "creation_time": "2026-06-01T12:00:00Z",
}
#: what each container keeps of SOURCE_TAGS (by a telling part of each): MP4 has no make or model
KEPT = {".mov": {"48.8584", "apple", "iphone", "2026-06-01"}, ".mkv": {"48.8584", "apple", "iphone", "2026-06-01"}}
KEPT[".mp4"] = {"48.8584", "2026-06-01"}


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_a_video_s_location_time_and_camera_are_not_copied(tiny_model, tmp_path, suffix):
    clip = tmp_path / f"phone{suffix}"
    with av.open(str(clip), "w") as out:
        out.metadata.update(SOURCE_TAGS)
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.metadata["location"] = SOURCE_TAGS["location"]
        for i in range(6):
            for packet in stream.encode(av.VideoFrame.from_ndarray(draw_face_frame(i / 4, 120, 160), format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(clip)) as source:  # the source does hold them
        assert SOURCE_TAGS["location"] in source.metadata.values()
    result = tmp_path / f"anonymised{suffix}"
    done = run_cli(
        "facecam", "--video", str(clip), "--out", str(result), "--mode", "anonymize", "--model", str(tiny_model)
    )
    assert done.returncode == 0, done.stderr
    with av.open(str(result)) as output:
        tags = {**output.metadata, **{k: v for s in output.streams for k, v in s.metadata.items()}}
    written = " ".join(f"{k}={v}" for k, v in tags.items()).lower()
    for value in ("48.8584", "apple", "iphone", "2026-06-01"):
        assert value not in written, tags


def test_a_photo_s_exif_is_not_copied(tiny_model, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    photos = tmp_path / "photos"
    photos.mkdir()
    exif = image_module.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15"  # Make, Model
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS
    image_module.fromarray(draw_face_frame(0.0, 120, 160)[..., ::-1]).save(photos / "a.jpg", exif=exif.tobytes())
    assert image_module.open(photos / "a.jpg").getexif().get(0x010F) == "Apple"  # the source does hold them
    out = tmp_path / "out"
    done = run_cli(
        "facecam", "--images", str(photos), "--out", str(out), "--mode", "anonymize", "--model", str(tiny_model)
    )
    assert done.returncode == 0, done.stderr
    written = image_module.open(out / "a.jpg")
    assert not written.getexif() and b"Apple" not in (out / "a.jpg").read_bytes()
    assert cv2.imread(str(out / "a.jpg")).shape == (120, 160, 3)
