"""`facecam --images` and the camera reader."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, draw_face_frame, run_cli, write_clip

from facecam.errors import CameraError
from facecam.realtime.camera import CameraReader


def test_images_mask_mode_writes_binary_pngs_of_photo_size(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), draw_face_frame(0.0, 90, 120))
    cv2.imwrite(str(photos / "b.png"), draw_face_frame(1.0, 64, 48))
    (photos / "notes.txt").write_text("not a photo")
    out = tmp_path / "masks"
    result = run_cli(
        "facecam", "--images", str(photos), "--out", str(out), "--mode", "mask", "--model", str(tiny_model)
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    a = cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (90, 120) and set(np.unique(a)) <= {0, 255}
    assert cv2.imread(str(out / "b.png"), cv2.IMREAD_UNCHANGED).shape == (64, 48)


def test_images_other_modes_keep_suffix(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), draw_face_frame(0.0))
    out = tmp_path / "res"
    assert (
        run_cli(
            "facecam", "--images", str(photos), "--out", str(out), "--mode", "anonymize", "--model", str(tiny_model)
        ).returncode
        == 0
    )
    assert [p.name for p in out.iterdir()] == ["a.jpg"]


def test_images_bad_input(tiny_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    m = str(tiny_model)
    assert_clean_error(
        run_cli("facecam", "--images", str(empty), "--out", str(tmp_path / "o"), "--model", m), "no photos"
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), draw_face_frame(0.0))
    assert_clean_error(run_cli("facecam", "--images", str(photos), "--out", str(photos), "--model", m), "overwrite")
    assert_clean_error(run_cli("facecam", "--images", str(photos), "--model", m), "--out")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    result = run_cli("facecam", "--images", str(photos), "--out", str(tmp_path / "o2"), "--model", m)
    assert_clean_error(result, "broken.jpg")
    assert (tmp_path / "o2" / "a.png").is_file()  # the readable photo was still done


def test_photos_in_formats_it_cannot_read_are_named_not_passed_over(tiny_model, tmp_path):
    # An iPhone's folder: HEIC photos. Before, a folder of them said "no photos" without a word
    # of why, and beside JPEGs they were passed over in silence with exit 0.
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "IMG_0001.HEIC").write_bytes(b"ftypheic")
    m = str(tiny_model)
    result = run_cli("facecam", "--images", str(phone), "--out", str(tmp_path / "o"), "--model", m)
    assert_clean_error(result, "no photos", "IMG_0001.HEIC", "convert them to JPEG")
    cv2.imwrite(str(phone / "a.jpg"), draw_face_frame(0.0))
    result = run_cli("facecam", "--images", str(phone), "--out", str(tmp_path / "o2"), "--model", m)
    assert_clean_error(result, "1 photo(s) in formats facecam cannot read (IMG_0001.HEIC)", "1 written")
    assert [p.name for p in (tmp_path / "o2").iterdir()] == ["a.jpg"]
    # a camera's raw file beside its own JPEG is that photo, done: no error for it
    (phone / "IMG_0001.HEIC").unlink()
    (phone / "a.CR2").write_bytes(b"raw")
    result = run_cli("facecam", "--images", str(phone), "--out", str(tmp_path / "o3"), "--model", m)
    assert result.returncode == 0, result.stderr


def test_camera_reader_keeps_newest_frame(tmp_path):
    clip = write_clip(tmp_path / "cam.mp4", frames=40, audio=False)
    with CameraReader(str(clip), retries=0) as cam:  # a file would replay on re-open
        first = cam.read()
        assert first is not None and first.shape == (120, 160, 3)
        import time

        time.sleep(0.5)  # the reader runs on; frames in between are dropped, not queued
        assert cam.read() is not None
        assert cam.dropped > 0
        while cam.read(timeout=0.5) is not None:
            pass
    assert not cam._thread.is_alive()


def test_camera_that_does_not_open_is_a_connection_error():
    with pytest.raises(ConnectionError):
        CameraReader(97).start()
    assert issubclass(CameraError, ConnectionError)


def test_camera_job_records_until_the_camera_ends(tiny_model, tmp_path, monkeypatch):
    from conftest import probe

    from facecam.realtime import runners
    from facecam.realtime.compose import ComposeSettings
    from facecam.realtime.segmenter import Segmenter

    clip = write_clip(tmp_path / "cam.mp4", frames=30, audio=False)
    # a file as the camera; no re-opening, which would replay the file
    monkeypatch.setattr(runners, "CameraReader", lambda index: CameraReader(str(clip), retries=0))
    out = tmp_path / "rec.mp4"
    with Segmenter(tiny_model) as seg, pytest.raises(CameraError, match="recording so far"):
        runners.run_camera(seg, 0, out, runners.JobOptions(ComposeSettings("blur")))
    assert 0 < probe(out)["frames"] <= 30


def test_window_keys_switch_mode_and_quit(monkeypatch):
    from facecam.realtime import runners
    from facecam.realtime.compose import ComposeSettings
    from facecam.realtime.pipeline import Frame

    keys = iter([ord("3"), ord("m"), ord("q")])
    monkeypatch.setattr(cv2, "imshow", lambda *a: None)
    monkeypatch.setattr(cv2, "waitKey", lambda *a: next(keys))
    settings = ComposeSettings("overlay")
    frame = Frame(0, np.zeros((8, 8, 3), np.uint8), 0.0, output=np.zeros((8, 8, 3), np.uint8))
    assert runners._show(frame, settings, 30.0) and settings.mode == "blur"
    assert runners._show(frame, settings, 30.0) and settings.mode == "replace"
    assert runners._show(frame, settings, 30.0) is False


def test_camera_without_screen_says_use_no_display(tiny_model):
    result = run_cli("facecam", "--camera", "0", "--model", str(tiny_model))
    assert_clean_error(result, "--no-display")


def test_a_camera_that_fails_to_close_still_leaves_the_recording(tiny_model, tmp_path, monkeypatch):
    from conftest import probe

    from facecam.realtime import runners
    from facecam.realtime.compose import ComposeSettings
    from facecam.realtime.segmenter import Segmenter

    clip = write_clip(tmp_path / "cam.mp4", frames=20, audio=False)

    class StuckOnClose(CameraReader):
        def close(self) -> None:
            super().close()
            raise CameraError("camera 0 did not let go")

    monkeypatch.setattr(runners, "CameraReader", lambda index: StuckOnClose(str(clip), retries=0))
    out = tmp_path / "rec.mp4"
    opts = runners.JobOptions(ComposeSettings("blur"), max_frames=10)
    with Segmenter(tiny_model) as seg, pytest.raises(CameraError, match="did not let go"):
        runners.run_camera(seg, 0, out, opts)
    assert 0 < probe(out)["frames"] <= 10  # finished and in place, though the camera's release failed


def test_a_phone_photo_is_turned_as_its_exif_says(tiny_model, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    photos = tmp_path / "photos"
    photos.mkdir()
    exif = image_module.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show": a phone held upright
    image_module.fromarray(draw_face_frame(0.0, 90, 120)[..., ::-1]).save(photos / "a.jpg", exif=exif.tobytes())
    out = tmp_path / "masks"
    result = run_cli(
        "facecam", "--images", str(photos), "--out", str(out), "--mode", "mask", "--model", str(tiny_model)
    )
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED).shape == (120, 90)  # upright, as shown
