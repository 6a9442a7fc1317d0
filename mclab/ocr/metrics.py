"""How well the OCR pipeline reads: character error rate, word and exact-line accuracy (with 95 % CIs) and
detection precision / recall against :func:`mclab.data.text_images` (:func:`score` -> :class:`Score`, one
:class:`LineScore` per line), the CER of everything read on an image in reading order (:func:`reading_cer`),
agreement with RapidOCR's own lines (:func:`agreement`), and the paired CER change between two configurations
(:func:`cer_delta`). Intervals come from :mod:`mclab.stats`. Introduced in notebook 18.

How a true line is matched to a predicted box (:data:`LINE_MATCH`): the renderer's boxes hug the ink (cap height to
baseline on a line without descenders), while a DB detector grows every box by its unclip ratio on purpose, so a
correct PP-OCRv6 box can be more than twice as tall as the ink and fall under IoU 0.5. A true line is therefore
*found* when a predicted box holds at least half of the line's box, one box per line (the qualifying pairs taken
by IoU, highest first): a box spanning two lines finds only one of them, and the other line counts as missed;
a line split into several boxes is found only if one of them holds half of it. RapidOCR's lines and ours
(:func:`agreement`) are both detector boxes and are matched at IoU ≥ 0.5.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..stats import ratio_bootstrap_ci, wilson_ci
from .pipeline import OCRResult

__all__ = ["edit_distance", "LineScore", "Score", "score", "LINE_MATCH", "reading_cer", "Agreement", "agreement",
           "CerDelta", "cer_delta"]

# A predicted box finds a true line when it holds at least this share of the line's box (one box per line)
LINE_MATCH = 0.5


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that turn ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _norm(s: str) -> str:
    return " ".join(s.split())


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(intersection over union, intersection over the area of ``a``) of two quadrilaterals (shapely polygons)."""
    from shapely.geometry import Polygon

    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    inter, union = pa.intersection(pb).area, pa.union(pb).area
    return (float(inter / union) if union > 0 else 0.0, float(inter / pa.area) if pa.area > 0 else 0.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two quadrilaterals."""
    return _overlap(a, b)[0]


def _greedy(pairs: list[tuple[float, int, int]]) -> dict[int, int]:
    """One-to-one matching from (quality, i, j) pairs, highest quality first: {i: j}."""
    used_g: set[int] = set()
    used_p: set[int] = set()
    out = {}
    for _q, i, j in sorted(pairs, reverse=True):
        if i not in used_g and j not in used_p:
            out[i] = j
            used_g.add(i)
            used_p.add(j)
    return out


def _match(gt_boxes: np.ndarray, pred_boxes: Sequence[np.ndarray], min_iou: float = 0.5) -> dict[int, int]:
    """Greedy one-to-one matching of two sets of boxes by IoU (highest first, at least ``min_iou``); {i: j}."""
    return _greedy([(q, i, j) for i, g in enumerate(gt_boxes) for j, p in enumerate(pred_boxes)
                    if (q := _iou(g, p)) >= min_iou])


def _match_lines(gt_boxes: np.ndarray, pred_boxes: Sequence[np.ndarray]) -> dict[int, int]:
    """True lines to predicted boxes: a pair qualifies when the box holds at least :data:`LINE_MATCH` of the
    line's box; qualifying pairs are taken one to one by IoU, highest first; {line: box}."""
    pairs = []
    for i, g in enumerate(gt_boxes):
        for j, p in enumerate(pred_boxes):
            iou, cover = _overlap(g, p)
            if cover >= LINE_MATCH:
                pairs.append((iou, i, j))
    return _greedy(pairs)


@dataclass
class LineScore:
    """One ground-truth line scored: the text (whitespace runs as one space), what was read in the box matched to
    it ("" when none matched), the character edit distance between them, and the words read right."""

    truth: str
    read: str
    errors: int                      # edit distance (characters)
    found: bool                      # a predicted box holds at least half of the line (LINE_MATCH)
    words: int                       # words in the truth
    words_ok: int                    # of them read exactly, in order (longest common subsequence)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Score:
    """Accuracy of a set of :class:`OCRResult` against ground truth (whitespace runs count as one space).
    Rates are fractions (0.03 = 3 %); each ``*_ci`` is a 95 % interval."""

    cer: float                       # character edit distance / ground-truth characters (missed lines: all wrong)
    cer_ci: tuple[float, float]      # bootstrap over lines
    word_acc: float                  # ground-truth words read exactly (in order: the longest common subsequence)
    word_acc_ci: tuple[float, float]  # Wilson
    line_acc: float                  # lines read exactly right
    line_acc_ci: tuple[float, float]  # Wilson
    det_precision: float             # predicted boxes that found a true line (LINE_MATCH, one to one)
    det_recall: float                # true lines found by a predicted box
    n_lines: int
    n_chars: int
    per_line: list[LineScore] = field(repr=False, default_factory=list)

    @property
    def space_error_share(self) -> float:
        """The share of the character errors that are spaces (a missed or an extra space between words): 1 - the
        errors left once spaces are taken out of both strings over all errors; 0 when there are none."""
        total = sum(r.errors for r in self.per_line)
        rest = sum(edit_distance(r.truth.replace(" ", ""), r.read.replace(" ", "")) for r in self.per_line)
        return 1 - rest / total if total else 0.0

    def worst(self, k: int = 8) -> list[LineScore]:
        """The ``k`` lines with the most character errors per character."""
        return sorted(self.per_line, key=lambda r: -r.errors / max(1, len(r.truth)))[:k]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_line")
        return d


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def score(results: Sequence[OCRResult], truths: Sequence[Any], *, seed: int = 0) -> Score:
    """Score ``results`` against ``truths`` (:class:`mclab.data.TextImage`, one per result): each true line is
    matched to a predicted box that holds at least half of it (:data:`LINE_MATCH`, one to one, highest IoU first);
    a line without a match counts all its characters as errors. Returns a :class:`Score` (CER with a bootstrap CI
    over lines, word and exact-line accuracy with Wilson CIs, detection precision and recall)."""
    if len(results) != len(truths):
        raise ValueError(f"len(results)={len(results)} but len(truths)={len(truths)}; pass one result per image")
    rows, n_pred, n_hit = [], 0, 0
    for res, tr in zip(results, truths, strict=True):
        if not isinstance(res, OCRResult):
            raise TypeError(f"results hold a {type(res).__name__}; pass OCRResult objects from mclab.ocr.read")
        m = _match_lines(np.asarray(tr.boxes), [ln.box for ln in res.lines])
        n_pred += len(res.lines)
        n_hit += len(m)
        for i, truth in enumerate(tr.lines):
            got = _norm(res.lines[m[i]].text) if i in m else ""
            t = _norm(truth)
            rows.append(LineScore(t, got, edit_distance(t, got), i in m, len(t.split()), _lcs(t.split(), got.split())))
    if not rows:
        raise ValueError("truths hold no lines to score")
    err = np.array([r.errors for r in rows], float)
    n = np.array([len(r.truth) for r in rows], float)
    words, words_ok = sum(r.words for r in rows), sum(r.words_ok for r in rows)
    exact = sum(r.errors == 0 for r in rows)
    return Score(float(err.sum() / n.sum()), ratio_bootstrap_ci(err, n, seed=seed, n_boot=1000),
                 words_ok / words, wilson_ci(words_ok, words), exact / len(rows), wilson_ci(exact, len(rows)),
                 n_hit / n_pred if n_pred else 0.0, n_hit / len(rows), len(rows), int(n.sum()), rows)


def reading_cer(results: Sequence[Any], truths: Sequence[Any], *, ignore_spaces: bool = True) -> float:
    """The character error rate of everything read on each image, joined in reading order, against its true
    lines joined (spaces removed from both when ``ignore_spaces``): no box matching, so a line split into
    several boxes, read out of order or read twice costs what it costs a reader. ``results``: :class:`OCRResult`
    objects or lists of strings (one per image, in reading order); ``truths``: :class:`mclab.data.TextImage`.
    Returns edit distance / true characters over all images."""
    if len(results) != len(truths):
        raise ValueError(f"len(results)={len(results)} but len(truths)={len(truths)}; pass one result per image")
    err = n = 0
    for res, tr in zip(results, truths, strict=True):
        read = res.texts if isinstance(res, OCRResult) else list(res)
        a, b = " ".join(tr.lines), " ".join(read)
        if ignore_spaces:
            a, b = "".join(a.split()), "".join(b.split())
        else:
            a, b = _norm(a), _norm(b)
        err += edit_distance(a, b)
        n += len(a)
    if n == 0:
        raise ValueError("truths hold no characters to score")
    return err / n


@dataclass
class Agreement:
    """How many of RapidOCR's lines the kit read with the same text, how far the matched boxes differ, and on how
    many images the kit returned RapidOCR's lines in RapidOCR's order."""

    lines: int                       # RapidOCR's lines
    same_text: int                   # of them matched by one of ours (IoU >= min_iou) with identical text
    box_max_px: float                # the largest corner distance between matched boxes (px)
    images: int = 0                  # images compared
    same_order: int = 0              # of them where our texts equal RapidOCR's, in the same order

    @property
    def rate(self) -> float:
        """same_text / lines (NaN when RapidOCR read nothing)."""
        return self.same_text / self.lines if self.lines else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


def agreement(ours: Sequence[OCRResult], theirs: Sequence[Sequence[tuple[np.ndarray, str]]], *,
              min_iou: float = 0.5) -> Agreement:
    """How often the kit's lines equal RapidOCR's (:func:`~mclab.ocr.pipeline.rapidocr_reference`) on the same
    images: each of RapidOCR's lines is matched to ours by IoU ≥ ``min_iou``; ``same_order`` counts the images
    whose lines we return in RapidOCR's reading order with RapidOCR's texts. Returns an :class:`Agreement`."""
    if len(ours) != len(theirs):
        raise ValueError(f"len(ours)={len(ours)} but len(theirs)={len(theirs)}; pass one entry per image")
    n = same = ordered = 0
    worst = 0.0
    for res, ref in zip(ours, theirs, strict=True):
        m = _match(np.array([b for b, _ in ref], np.float32).reshape(-1, 4, 2), [ln.box for ln in res.lines], min_iou)
        for i, (b, text) in enumerate(ref):
            n += 1
            if i in m:
                ln = res.lines[m[i]]
                same += ln.text == text
                worst = max(worst, float(np.abs(ln.box - np.asarray(b, np.float32)).max()))
        ordered += [ln.text for ln in res.lines] == [t for _, t in ref]
    return Agreement(n, same, worst, len(ours), ordered)


@dataclass
class CerDelta:
    """CER of one configuration minus another's in points (100 × fraction), with a paired 95 % CI over lines."""

    delta_pts: float
    ci: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {"delta_pts": self.delta_pts, "ci": list(self.ci)}


def cer_delta(a: Score, b: Score, *, seed: int = 0, n_boot: int = 2000) -> CerDelta:
    """CER of ``b`` minus CER of ``a`` in points with a paired bootstrap 95 % CI over lines
    (:func:`mclab.stats.ratio_bootstrap_ci` of the per-line error differences); both scores must come from the same
    ground truth in the same order. Returns a :class:`CerDelta`."""
    if [r.truth for r in a.per_line] != [r.truth for r in b.per_line]:
        raise ValueError("a and b were scored on different ground truth; score both on the same images")
    ea = np.array([r.errors for r in a.per_line], float)
    eb = np.array([r.errors for r in b.per_line], float)
    n = np.array([len(r.truth) for r in a.per_line], float)
    ci = ratio_bootstrap_ci((eb - ea) * 100, n, seed=seed, n_boot=n_boot)
    return CerDelta(float((eb.sum() - ea.sum()) / n.sum() * 100), ci)
