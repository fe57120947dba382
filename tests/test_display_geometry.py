"""A video shown otherwise than it is stored. Turned: a phone held upright stores its video
sideways, with a display rotation; it is read upright, its faces found the right way up, and
written upright, so that no player has to turn it. Non-square pixels: a camcorder's anamorphic
16:9 (720x480 pixels shown 32:27 wide); the output keeps that shape, so it plays as wide.
Colours: read through the source's colour matrix (the one players assume where it says none),
written BT.709 and tagged so, so that a player shows the output in the source's colours. Odd
sizes: written one pixel larger in the 4:2:0 every player decodes."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import run_cli

from facecam.realtime.segmenter import WEIGHTS_DIR
from facecam.realtime.video_reader import (
    VideoReader,
    assumed_matrix,
    turned_upright,
    upright_sample_aspect,
    upright_turns,
)

SAMPLE = WEIGHTS_DIR.parent / "samples" / "astronaut.mp4"


def write_turned(path, frames: list[np.ndarray], degrees: int, fps: int = 24):
    """``frames`` (upright BGR) stored turned ``degrees`` clockwise, with the display rotation
    (``degrees`` counter-clockwise) that shows them upright, as a phone writes its video."""
    turns = degrees // 90
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = (height, width) if turns % 2 else (width, height)
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(degrees)
        for frame in frames:
            stored = np.ascontiguousarray(np.rot90(frame, k=-turns))
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sample_frames(count: int) -> list[np.ndarray]:
    with av.open(str(SAMPLE)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == count:
                return frames
    raise AssertionError("sample clip too short")


def test_display_rotations_become_quarter_turns():
    assert [upright_turns(d) for d in (0, 90, 180, 270, -90, -180, 360)] == [0, 1, 2, 3, 3, 2, 0]
    assert upright_turns(45) == upright_turns(90.4 + 3) == 0  # no camera writes these: left as stored
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert turned_upright(image, 0) is image
    for turns in (1, 2, 3):
        assert np.array_equal(turned_upright(image, turns), np.rot90(image, k=turns))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_video_is_read_upright(tmp_path, degrees):
    frames = sample_frames(4)
    clip = write_turned(tmp_path / f"turned{degrees}.mp4", frames, degrees)
    with VideoReader(clip) as reader:
        assert reader.turns == degrees // 90
        assert (reader.width, reader.height) == (640, 480)  # the upright frame's, not the stored one's
        got = list(reader.frames())
    assert all(g.shape == (480, 640, 3) for g in got)
    # as the upright frames (H.264 changes a little), not as them turned
    assert np.abs(got[0].astype(int) - frames[0]).mean() < 6
    assert np.abs(np.rot90(got[0], 2).astype(int) - frames[0]).mean() > 20


def test_a_turned_video_whose_first_packet_is_broken_is_still_read_upright(tmp_path):
    # The peek at the rotation gave up at the first packet that failed to decode, while the reader
    # passes such packets over: every frame then came out sideways.
    whole = tmp_path / "turned.mp4"
    with av.open(str(whole), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 480, 640, "yuv420p"
        stream.codec_context.gop_size = 5  # a key frame every 5: the frames after the broken one decode
        stream.options = {"keyint": "5", "min-keyint": "5", "scenecut": "0", "bf": "0"}
        stream.set_display_rotation(90)
        for frame in sample_frames(15):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame, k=-1)))):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    broken = tmp_path / "broken.mp4"
    with av.open(str(whole)) as source, av.open(str(broken), "w") as copy:
        video = source.streams.video[0]
        target = copy.add_stream_from_template(video)
        for index, packet in enumerate(p for p in source.demux(video) if p.dts is not None):
            if index == 0:  # its payload zeroed: it no longer decodes
                data = bytearray(bytes(packet))
                data[20:] = bytes(len(data) - 20)
                zeroed = av.Packet(bytes(data))
                zeroed.pts, zeroed.dts, zeroed.time_base, zeroed.is_keyframe = (
                    packet.pts,
                    packet.dts,
                    packet.time_base,
                    True,
                )
                packet = zeroed
            packet.stream = target
            copy.mux(packet)
    with VideoReader(broken) as reader:
        frames = list(reader.frames())
        assert reader.skipped >= 1 and reader.turns == 1 and (reader.width, reader.height) == (640, 480)
    assert frames and all(f.shape == (480, 640, 3) for f in frames)


def test_a_phone_video_stored_sideways_gets_its_face_found_and_is_written_upright(tmp_path):
    # Read sideways, the sample's face was found in none of these frames (mask mode) and the
    # output, written without the file's rotation, played sideways.
    frames = sample_frames(24)
    upright = write_turned(tmp_path / "upright.mp4", frames, 0)
    sideways = write_turned(tmp_path / "sideways.mp4", frames, 90)
    masks = {}
    for name, clip in (("upright", upright), ("sideways", sideways)):
        out = tmp_path / f"{name}_mask.mp4"
        result = run_cli("facecam", "--video", str(clip), "--out", str(out), "--mode", "mask", "--no-display")
        assert result.returncode == 0, result.stderr
        with av.open(str(out)) as container:
            decoded = list(container.decode(video=0))
        assert all((f.width, f.height) == (640, 480) and not getattr(f, "rotation", 0) for f in decoded)
        masks[name] = np.stack([f.to_ndarray(format="gray") > 127 for f in decoded])
    a, b = masks["upright"], masks["sideways"]
    assert a.mean() > 0.02  # the face is there ...
    assert (a & b).sum() / (a | b).sum() > 0.9  # ... and found the same way in the sideways file


def test_the_pixel_shape_of_the_upright_frame():
    assert upright_sample_aspect(None, 0) is None and upright_sample_aspect(Fraction(0, 1), 1) is None  # unknown
    assert upright_sample_aspect(Fraction(1), 0) is None  # square
    assert upright_sample_aspect(Fraction(32, 27), 0) == upright_sample_aspect(Fraction(32, 27), 2) == Fraction(32, 27)
    assert upright_sample_aspect(Fraction(4, 3), 1) == Fraction(3, 4)  # a quarter turn swaps a pixel's sides


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_non_square_pixels_keep_their_shape(tiny_model, tmp_path, suffix):
    # Before, the output of a DV camcorder's 16:9 (720x480 at 32:27) said nothing of its pixels'
    # shape and played squeezed to 3:2.
    clip = tmp_path / "dv.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 720, 480, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(32, 27)
        for frame in sample_frames(6):
            picture = av.VideoFrame.from_ndarray(cv2.resize(frame, (720, 480)), format="bgr24")
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with VideoReader(clip) as reader:
        assert reader.sample_aspect == Fraction(32, 27)
    result = tmp_path / f"out{suffix}"
    done = run_cli("facecam", "--video", str(clip), "--out", str(result), "--model", str(tiny_model), "--no-display")
    assert done.returncode == 0, done.stderr
    with av.open(str(result)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (720, 480)
        assert video.sample_aspect_ratio == Fraction(32, 27) and video.display_aspect_ratio == Fraction(16, 9)


def test_an_odd_sized_video_is_written_in_the_4_2_0_every_player_decodes(tiny_model, tmp_path):
    # Before, a 121x75 source (a screen recording of a window, say) was written H.264 4:4:4 at
    # its exact size: Chromium plays that, QuickTime, Firefox and phone decoders do not.
    clip = tmp_path / "window.mkv"
    frames = [cv2.resize(f, (121, 75)) for f in sample_frames(4)]
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 121, 75, "yuv444p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    result = tmp_path / "out.mp4"
    done = run_cli("facecam", "--video", str(clip), "--out", str(result), "--model", str(tiny_model), "--no-display")
    assert done.returncode == 0, done.stderr
    with av.open(str(result)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (122, 76)
        assert video.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(video)) == 4


def test_the_pixel_added_to_an_odd_side_repeats_the_last_row_and_column(tmp_path):
    from facecam.realtime.video_io import VideoWriter, even_sided

    frame = np.zeros((75, 121, 3), np.uint8)
    frame[:, :, 2] = np.linspace(0, 255, 121, dtype=np.uint8)[None, :]  # red rising to the right
    frame[:, :, 1] = np.linspace(0, 255, 75, dtype=np.uint8)[:, None]  # green rising downwards
    padded = even_sided(frame)
    assert padded.shape == (76, 122, 3)
    assert np.array_equal(padded[:75, :121], frame)
    assert np.array_equal(padded[:75, 121], frame[:, 120]) and np.array_equal(padded[75, :121], frame[74])
    assert even_sided(padded) is padded  # even sides: the frame itself
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, Fraction(24), 121, 75) as writer:
        for _ in range(3):
            writer.write(frame)
    with av.open(str(out)) as container:
        back = next(container.decode(video=0)).to_ndarray(format="bgr24")
    assert back.shape == (76, 122, 3)
    assert np.abs(back[:75, :121].astype(int) - frame).mean() < 3  # the picture itself, through H.264


BANDS_BGR = [(0, 0, 200), (0, 200, 0), (200, 0, 0), (40, 160, 220)]  # red, green, blue, a skin-like tone


def colour_bands(height: int, width: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(BANDS_BGR):
        image[:, i * width // 4 : (i + 1) * width // 4] = colour
    return image


def band_colours(image: np.ndarray) -> np.ndarray:
    """The colour at the middle of each band."""
    height, width = image.shape[:2]
    return np.array([image[height // 2, (2 * i + 1) * width // 8] for i in range(4)], int)


def as_a_player_shows(path) -> np.ndarray:
    """The first frame of ``path`` in BGR as a player shows it: through the colour matrix its
    stream says, or where it says none, BT.709 for HD and BT.601 below (mpv's and VLC's rule)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    matrix = frame.colorspace if frame.colorspace != 2 else (1 if frame.height > 576 else 5)
    return frame.reformat(format="bgr24", src_colorspace=matrix, src_color_range=1).to_ndarray()


def write_bands(path, height: int, width: int, tagged: bool):
    """A clip of colour_bands, its YUV made with the matrix a camera uses for its size (BT.709
    for HD, BT.601 below), the stream tagged with it or (``tagged`` False) saying nothing."""
    matrix = 1 if height > 576 else 5
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if tagged:
            context = stream.codec_context
            context.colorspace, context.color_primaries, context.color_trc = matrix, 1 if matrix == 1 else 6, 1
            context.color_range = 1
        for _ in range(4):
            picture = av.VideoFrame.from_ndarray(colour_bands(height, width), format="bgr24")
            picture = picture.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range=1)
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_the_matrix_a_frame_is_read_with():
    assert assumed_matrix(1, 1080) is None and assumed_matrix(5, 480) is None  # it says: its own
    assert assumed_matrix(2, 720) == assumed_matrix(None, 1080) == "ITU709"  # untagged HD
    assert assumed_matrix(2, 576) == "ITU601"  # untagged SD


@pytest.mark.parametrize(("height", "width", "tagged"), [(720, 1280, True), (720, 1280, False), (360, 640, False)])
def test_the_output_plays_in_the_source_s_colours(tiny_model, tmp_path, height, width, tagged):
    # Before: the output said no matrix and was made with BT.601, so a player showed an HD
    # output through BT.709: a camera's green 198 as 165, its red turned orange.
    clip = write_bands(tmp_path / "bands.mp4", height, width, tagged)
    seen = band_colours(as_a_player_shows(clip))
    assert np.abs(seen - np.array(BANDS_BGR)).max() <= 6  # the clip is what it should be
    with VideoReader(clip) as reader:
        assert np.abs(band_colours(next(iter(reader.frames()))) - seen).max() <= 3  # read as shown
    out = tmp_path / "out.mp4"
    # blur on flat bands: the middle of each band keeps its colour whatever the model paints
    done = run_cli("facecam", "--video", str(clip), "--out", str(out), "--mode", "blur", "--model", str(tiny_model))
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        context = container.streams.video[0].codec_context
        assert (context.colorspace, context.color_primaries, context.color_trc, context.color_range) == (1, 1, 1, 1)
    assert np.abs(band_colours(as_a_player_shows(out)) - seen).max() <= 4


def test_an_hdr_source_is_said_to_lose_its_colours(tiny_model, tmp_path):
    # A recent phone's video is HDR (HLG); it is turned into 8-bit SDR without tone mapping, so the
    # user is told rather than left to wonder at flat colours.
    clips = {}
    for name, transfer in (("hlg", 18), ("sdr", 1)):
        clips[name] = tmp_path / f"{name}.mp4"
        with av.open(str(clips[name]), "w") as out:
            stream = out.add_stream("libx264", rate=12)
            stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
            context = stream.codec_context
            context.color_primaries, context.color_trc, context.colorspace = (9, 18, 9) if transfer == 18 else (1, 1, 1)
            for _ in range(3):
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((120, 160, 3), 90, np.uint8))):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    with VideoReader(clips["hlg"]) as hlg, VideoReader(clips["sdr"]) as sdr:
        assert (hlg.hdr, sdr.hdr) == ("HLG", None)
    for name, told in (("hlg", True), ("sdr", False)):
        out = tmp_path / f"{name}_out.mp4"
        done = run_cli("facecam", "--video", str(clips[name]), "--out", str(out), "--model", str(tiny_model))
        assert done.returncode == 0, done.stderr
        assert ("is HDR (HLG)" in done.stderr) == told, done.stderr
