"""The field's terms in English beside the Chinese terms the source material uses.

The source material is written in Simplified Chinese (seeds 000, 001, 003) and Traditional
Chinese (seed 004); ``zh_hant`` is filled where the Traditional form differs. Introduced in
notebook 00.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Term", "GLOSSARY", "lookup"]


@dataclass(frozen=True)
class Term:
    en: str
    zh: str             # Simplified, as in seeds 000/001/003
    meaning: str
    notebook: str       # where the kit measures or builds it
    zh_hant: str = ""   # Traditional, as in seed 004, where it differs


GLOSSARY: tuple[Term, ...] = (
    Term("model compilation", "模型编译", "turning a trained network into a form that runs fast on one target", "00", "模型編譯"),
    Term("inference", "推理", "running a trained model on new inputs (no gradients, no weight updates)", "01"),
    Term("latency", "延迟", "time from input to output for one request; reported as percentiles (P50/P90/P99)", "01", "延遲"),
    Term("tail latency", "P99 延迟", "the latency that 1 in 100 requests exceeds; what users notice", "01", "P99 延遲"),
    Term("throughput", "吞吐量", "answers per second (QPS, FPS); grows with batching while latency grows too", "02"),
    Term("batching / dynamic batching", "批处理 / 动态批处理", "grouping requests so one call serves many; dynamic: as they arrive, with a wait limit", "02", "批處理 / 動態批處理"),
    Term("FLOPs / MACs", "浮点运算数", "work per inference; one multiply-accumulate (MAC) is two floating-point operations", "03", "浮點運算數"),
    Term("parameter count", "参数量", "number of learned weights", "03", "參數量"),
    Term("model size", "模型大小", "bytes of the saved model file", "03"),
    Term("memory footprint / peak memory", "内存占用 / 峰值内存", "bytes held while running: weights, activations, workspace", "03", "記憶體佔用"),
    Term("compute (TOPS)", "算力", "operations per second a chip can do at best", "03"),
    Term("quantisation", "量化", "storing and computing with fewer bits (INT8, INT4) via a scale and zero point", "04"),
    Term("calibration", "校准", "running sample data to choose quantisation ranges", "05", "校準"),
    Term("post-training quantisation (PTQ)", "训练后量化", "quantising a trained model without retraining; dynamic (weights only) or static (activations too)", "05", "訓練後量化"),
    Term("quantisation-aware training (QAT)", "量化感知训练", "training with simulated (fake) quantisation so the weights adapt to it", "05", "量化感知訓練"),
    Term("pruning", "剪枝", "removing weights (unstructured) or whole channels (structured)", "06"),
    Term("structured pruning", "结构化剪枝", "removing whole filters/channels so the dense model itself gets smaller", "06", "結構化剪枝"),
    Term("unstructured pruning", "非结构化剪枝", "zeroing individual weights; needs sparse kernels to be faster", "06", "非結構化剪枝"),
    Term("sparsity", "稀疏度", "fraction of weights that are zero", "06"),
    Term("knowledge distillation", "知识蒸馏", "training a small student to imitate a large teacher's outputs", "07", "知識蒸餾"),
    Term("teacher / student model", "教师模型 / 学生模型", "the large trained model / the small model learning from it", "07", "教師模型 / 學生模型"),
    Term("temperature", "温度", "softens the teacher's probabilities so the student sees 'dark knowledge'", "07", "溫度"),
    Term("soft labels", "软标签", "the teacher's full probability vector used as a training target", "07", "軟標籤"),
    Term("low-rank factorisation", "低秩分解", "replacing a weight matrix by a product of two thinner ones (SVD)", "08"),
    Term("operator fusion", "算子融合", "merging consecutive operators (conv+BN+ReLU) into one kernel", "09"),
    Term("deployment", "部署", "shipping the model and its runtime to the target and serving it", "09"),
    Term("KV cache", "KV Cache", "keeping attention keys/values of past tokens so each new token costs one step", "13"),
    Term("activation outliers", "激活离群值", "a few channels with activations tens of times larger than the rest, as large LLMs grow", "13b", "激活離群值"),
    Term("SmoothQuant", "SmoothQuant 平滑量化", "dividing activation channels by s and multiplying weight columns by s so W8A8 rounding works", "13b"),
    Term("speculative decoding", "投机解码", "a small draft model guesses k tokens, the large model checks them in one pass; output unchanged", "13b", "推測解碼"),
    Term("power consumption", "功耗", "watts drawn while inferring", "14"),
    Term("energy efficiency", "能效比", "inferences per joule (or per watt-second)", "14", "能效比"),
    Term("energy per inference", "单次能耗", "joules (or mJ) spent on one answer", "14", "單次能耗"),
    Term("stability", "稳定性", "the same input gives the same output run after run", "15", "穩定性"),
    Term("accuracy / accuracy drop", "准确率 / 精度损失", "share of correct answers / how much optimisation costs of it", "16", "準確率 / 精度損失"),
    Term("edge device", "边缘设备", "a device near the data (phone, camera, board) with tight power and memory", "16", "邊緣設備"),
    Term("cost", "成本", "hardware, cloud and engineering spend per unit of useful work", "16"),
    Term("impossible triangle", "不可能三角", "accuracy, latency and resources: improving two costs the third", "00"),
    Term("neural architecture search (NAS)", "神经架构搜索", "searching a space of networks for the best one under a budget (RL, evolution, DARTS, weight sharing)", "19", "神經架構搜索"),
    Term("Once-for-All", "Once-for-All (OFA)", "one weight-sharing supernet trained once; sub-networks cut from it for each device without retraining", "19"),
    Term("Huffman coding", "霍夫曼编码", "a prefix code giving frequent symbols shorter code words; average length within 1 bit of the entropy", "19", "霍夫曼編碼"),
    Term("mixed precision", "混合精度", "different bit widths per layer (or per tensor) where each is needed, under a size or speed budget", "19"),
    Term("weight sharing", "权重共享", "many weights replaced by one of a few shared values (k-means centroids) plus a short index", "19", "權重共享"),
)


def lookup(word: str) -> list[Term]:
    """Terms whose English or Chinese (either script) contains ``word`` (case-insensitive)."""
    if not word or not word.strip():
        raise ValueError("word must be a non-empty string, e.g. lookup('latency') or lookup('量化')")
    w = word.strip().lower()
    return [t for t in GLOSSARY if w in t.en.lower() or w in t.zh or (t.zh_hant and w in t.zh_hant)]
