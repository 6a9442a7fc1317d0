"""mclab.ocr.metrics: edit distance, scores, agreement and the paired CER change, against hand-made results."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rapidocr")

from mclab import ocr  # noqa: E402


@pytest.mark.parametrize(("a", "b", "d"), [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0),
                                           ("traverse io jump", "traverse iojump", 1)])
def test_edit_distance(a, b, d):
    assert ocr.edit_distance(a, b) == d == ocr.edit_distance(b, a)


def test_score_counts_missed_lines_as_all_wrong(lines):
    truth = lines[0]
    perfect = ocr.OCRResult([ocr.OCRLine(truth.lines[0], 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    assert ocr.score([perfect], [truth]).cer == 0 and ocr.score([perfect], [truth]).line_acc == 1
    missed = ocr.OCRResult([], {}, {}, truth.image.shape[:2])
    s = ocr.score([missed], [truth])
    assert s.cer == 1 and s.det_recall == 0 and s.word_acc == 0
    shifted = ocr.OCRResult([ocr.OCRLine(truth.lines[0], 1.0, truth.boxes[0] + [0, 500])], {}, {}, (1, 1))
    assert ocr.score([shifted], [truth]).det_precision == 0  # a box elsewhere matches nothing
    delta = ocr.cer_delta(ocr.score([perfect], [truth]), s)
    assert delta.delta_pts == pytest.approx(100) and delta.ci[0] <= delta.delta_pts <= delta.ci[1]
    assert delta.as_dict() == {"delta_pts": delta.delta_pts, "ci": list(delta.ci)}
    row = s.per_line[0]
    assert (row.truth, row.read, row.errors, row.found) == (" ".join(truth.lines[0].split()), "", len(row.truth), False)
    assert s.worst(1) == [row] and row.as_dict()["words_ok"] == 0 and "per_line" not in s.as_dict()
    with pytest.raises(ValueError, match="different ground truth"):
        ocr.cer_delta(s, ocr.score([perfect], [lines[1]]))
    t = truth.lines[0]
    assert " " in t
    glued = ocr.OCRResult([ocr.OCRLine(t.replace(" ", ""), 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    typo = ocr.OCRResult([ocr.OCRLine("#" + t[1:], 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    assert ocr.score([glued], [truth]).space_error_share == 1 and ocr.score([glued], [truth]).cer > 0
    assert ocr.score([typo], [truth]).space_error_share == 0 and ocr.score([perfect], [truth]).space_error_share == 0


def test_a_detector_box_grown_around_the_ink_finds_the_line(lines):
    truth = lines[0]
    (tl, tr, br, bl) = truth.boxes[0]
    h = br[1] - tr[1]
    tall = np.array([tl - [4, 1.2 * h], tr + [4, -1.2 * h], br + [4, 1.2 * h], bl + [-4, 1.2 * h]], np.float32)
    r = ocr.OCRResult([ocr.OCRLine(truth.lines[0], 1.0, tall)], {}, {}, truth.image.shape[:2])
    assert ocr.metrics._iou(truth.boxes[0], tall) < 0.5  # IoU would call this correct, 3.4x taller box a miss
    s = ocr.score([r], [truth])
    assert s.det_recall == 1 and s.cer == 0  # it holds the whole line: found, and its text counts
    half = truth.boxes[0].copy()
    half[1:3, 0] = half[0, 0] + 0.4 * (half[1, 0] - half[0, 0])  # a box over the first 40 % of the line only
    r = ocr.OCRResult([ocr.OCRLine(truth.lines[0], 1.0, half)], {}, {}, truth.image.shape[:2])
    assert ocr.score([r], [truth]).det_recall == 0 and ocr.LINE_MATCH == 0.5


def test_reading_cer_joins_what_was_read_in_order(lines):
    truth = lines[0]
    t = truth.lines[0]
    words = t.split()
    assert ocr.reading_cer([[t]], [truth]) == 0
    assert ocr.reading_cer([words], [truth]) == 0  # split into boxes, read in order: spaces ignored
    assert ocr.reading_cer([words], [truth], ignore_spaces=False) == 0  # joined with one space each
    assert ocr.reading_cer([words[::-1]], [truth]) > 0  # read out of order costs characters
    assert ocr.reading_cer([[]], [truth]) == 1
    r = ocr.OCRResult([ocr.OCRLine(t, 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    assert ocr.reading_cer([r], [truth]) == 0
    with pytest.raises(ValueError, match="one result per image"):
        ocr.reading_cer([], [truth])


def test_agreement_matches_lines_by_box_and_compares_text(lines):
    truth = lines[0]
    ours = ocr.OCRResult([ocr.OCRLine(t, 1.0, b + 1) for t, b in zip(truth.lines, truth.boxes, strict=True)], {}, {},
                         truth.image.shape[:2])
    theirs = [(b, t) for t, b in zip(truth.lines, truth.boxes, strict=True)] + [(truth.boxes[0] + [0, 500], "gone")]
    agree = ocr.agreement([ours], [theirs])
    assert (agree.lines, agree.same_text, agree.box_max_px) == (len(truth.lines) + 1, len(truth.lines), 1.0)
    assert (agree.images, agree.same_order) == (1, 0)  # RapidOCR read one more line
    assert ocr.agreement([ours], [theirs[:-1]]).same_order == 1
    n = len(truth.lines)
    assert agree.rate == pytest.approx(n / (n + 1)) and agree.as_dict()["rate"] == agree.rate
    assert np.isnan(ocr.agreement([], []).rate)
    with pytest.raises(ValueError, match="one entry per image"):
        ocr.agreement([ours], [])


def test_scoring_rejects_bad_input(lines):
    with pytest.raises(ValueError, match="one result per image"):
        ocr.score([], lines)
    with pytest.raises(TypeError, match="OCRResult"):
        ocr.score(["text"], lines[:1])
