"""``bench.qr --frames DIR``: someone else's frames, compared the same way (no timing asserted)."""

from __future__ import annotations

from bench import qr as bench
from devices.sim.qr_scenes import NO_CODE
from tests.qr.frames import frame


def test_a_folder_of_frames_is_compared_like_the_generated_set(tmp_path, capsys):
    samples = [frame("clean", 0), frame("small", 2), frame(NO_CODE, 0)]
    bench.write_frames(samples, tmp_path)
    # An editor's trailing newline in NAME.txt is not part of the expected text.
    txt = tmp_path / f"{samples[0].name}.txt"
    txt.write_text(txt.read_text() + "\n", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{s.name}.png" for s in samples] + [f"{s.name}.txt" for s in samples[:2]])

    loaded = bench.load_frames(tmp_path)
    assert {s.name: s.expected for s in loaded} == {s.name: s.expected for s in samples}

    results = {r.label: r for r in bench.compare(loaded, bench.contestants(ablation=False), 1)}
    raw, pipeline = results[bench.RAW], results[bench.PIPELINE]
    assert (raw.coded, raw.no_code) == (2, 1)
    assert (raw.decoded, pipeline.decoded) == (1, 2)  # small-002 is the pipeline's alone
    assert all(r.false_reads == 0 for r in results.values())
    assert all(len(r.times) == 3 for r in results.values())

    bench.main(["--frames", str(tmp_path), "--repeats", "1", "--no-ablation"])
    printed = capsys.readouterr().out
    assert "| pyzbar" in printed and bench.PIPELINE in printed
    assert "3 frames: 2 with a code" in printed


def test_a_frame_with_a_wrong_expectation_counts_as_a_false_read(tmp_path):
    sample = frame("clean", 0)
    bench.write_frames([sample], tmp_path)
    (tmp_path / f"{sample.name}.txt").write_text("ZZA1.k1.something-else", encoding="utf-8")
    results = bench.compare(bench.load_frames(tmp_path), bench.contestants(ablation=False), 1)
    raw = next(r for r in results if r.label == bench.RAW)
    assert (raw.decoded, raw.false_reads) == (0, 1)
