"""Plots (issue 9 item 13): the overview figure, LLaMA-Factory's smoothing, no offset notation on the axes."""
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from prefswift.train.plots import overview_figure, read_series, smooth, write_plots  # noqa: E402


def _log(tmp_path, n=12, eval_every=4, loss0=6.923):
    rows = []
    for step in range(1, n + 1):
        rows.append({"step": step, "epoch": step / n, "loss": loss0 + 1e-5 * math.sin(step),
                     "rewards/chosen": -0.68 + 0.01 * step, "rewards/rejected": -0.69 - 0.01 * step,
                     "rewards/accuracies": min(1.0, 0.5 + step / 20), "rewards/margins": 0.01 + 0.02 * step,
                     "nll_loss": 6.8, "learning_rate": 5e-5})
        if step % eval_every == 0:
            rows.append({"step": step, "eval_loss": loss0 - 1e-5, "eval_rewards/chosen": -0.6,
                         "eval_rewards/rejected": -0.7, "eval_rewards/accuracies": 0.75,
                         "eval_rewards/margins": 0.1})
    rows.append({"step": n, "train_runtime": 3.0, "train_loss": loss0})
    path = tmp_path / "logging.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    return path


def test_smooth_is_llama_factory_ema():
    assert smooth([]) == []
    assert smooth([3.0, 3.0, 3.0]) == [3.0, 3.0, 3.0]
    w = 1.8 * (1 / (1 + math.exp(-0.1)) - 0.5)  # n = 2
    assert w == pytest.approx(0.0449625, abs=1e-6)
    assert smooth([0.0, 10.0]) == pytest.approx([0.0, 9.550375], abs=1e-6)  # s1 = w * 0 + (1 - w) * 10
    values = [float(i % 5) for i in range(100)]  # n = 100: weight ~0.89, the curve is much flatter than the data
    s = smooth(values)
    w100 = 1.8 * (1 / (1 + math.exp(-5.0)) - 0.5)
    assert s[1] == pytest.approx(w100 * 0.0 + (1 - w100) * 1.0)
    assert max(s[50:]) - min(s[50:]) < 0.5 * (max(values) - min(values))


def test_read_series_skips_bad_rows_and_keeps_eval(tmp_path):
    path = _log(tmp_path)
    with path.open("a") as f:
        f.write('{"step": 13, "loss": null}\n{"step": 14, "loss": NaN}\n{"loss": 1.0}\n')
    series = read_series(path)
    assert [s for s, _ in series["loss"]] == list(range(1, 13))
    assert [s for s, _ in series["eval_loss"]] == [4, 8, 12]
    assert "eval_rewards/chosen" in series and "rewards/rejected" in series


def test_overview_png_and_its_panels(tmp_path):
    written = write_plots(_log(tmp_path), tmp_path / "images")
    names = {p.name for p in written}
    assert "overview.png" in names and {"loss.png", "rewards_margins.png", "eval_loss.png"} <= names
    img = mpimg.imread(tmp_path / "images" / "overview.png")
    assert img.shape[0] > 500 and img.shape[1] > 800  # a readable 2x2 figure, not a thumbnail
    fig = overview_figure(read_series(tmp_path / "logging.jsonl"))
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["loss", "rewards: chosen vs rejected", "rewards/accuracies", "rewards/margins"]
        labels = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
        assert labels[0] == ["train (raw)", "train (smoothed)", "eval"]
        assert labels[1] == ["chosen (raw)", "chosen (smoothed)", "eval chosen", "rejected (raw)",
                             "rejected (smoothed)", "eval rejected"]
        raw, smoothed = fig.axes[3].get_lines()[:2]
        assert list(smoothed.get_ydata()) == pytest.approx(smooth(list(raw.get_ydata())))
        assert list(fig.axes[0].get_lines()[2].get_xdata()) == [4, 8, 12]  # eval on the train axes, by step
    finally:
        plt.close(fig)


def test_no_offset_notation_for_tiny_ranges(tmp_path):
    series = read_series(_log(tmp_path, loss0=6.923))  # loss varies by 2e-5: matplotlib would write "+6.923"
    fig = overview_figure(series)
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            assert ax.yaxis.get_major_formatter().get_offset() == ""
            assert ax.xaxis.get_major_formatter().get_offset() == ""
        ticks = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
        assert ticks and all(t.replace("\u2212", "-").startswith("6.92") for t in ticks)
        # the same data on a default axis does get an offset: the test is not vacuous
        f2, ax2 = plt.subplots()
        ax2.plot(*zip(*series["loss"]))
        f2.canvas.draw()
        assert ax2.yaxis.get_major_formatter().get_offset() != ""
        plt.close(f2)
    finally:
        plt.close(fig)


def test_overview_without_rewards_still_written(tmp_path):
    path = tmp_path / "logging.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in range(1, 5)))
    written = write_plots(path, tmp_path / "images")
    assert {p.name for p in written} == {"overview.png", "loss.png"}
