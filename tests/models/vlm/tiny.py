"""What the vlm tests share: a tiny vision-language model of a real transformers
architecture (LLaVA: a CLIP vision tower and a Llama decoder, random weights) with its
processor (a byte-level BPE tokenizer built here, CLIP-style image processing, a chat
template), written as a model directory; images to show it; and the settings that keep
its answers short."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

# A user turn with the image first, as LLaVA-1.5's template has it.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | upper }}: "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
# Bounds that keep a random model's answers (which run to every limit) short.
SHORT = {
    "vlm_caption_max_chars": 24,
    "vlm_ocr_max_chars": 24,
    "vlm_name_max_chars": 8,
    "vlm_max_objects": 2,
}


def tiny_llava(folder: Path, seed: int = 0) -> Path:
    """A LLaVA model with random weights and its processor, saved as ``save_pretrained``
    does: what ``LOOM_VLM_MODEL_DIR`` points at."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ('"', ":"), ("{", '"'), (",", '"')]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    images = LlavaImageProcessorPil(size={"shortest_edge": 32},
                                    crop_size={"height": 32, "width": 32})  # fmt: skip
    processor = LlavaProcessor(
        image_processor=images, tokenizer=tokenizer, patch_size=8,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def picture(width: int, height: int, kind: str = "gradient") -> Image.Image:
    """A picture to show the model: a gradient, stripes or noise."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    if kind == "stripes":
        pixels = np.stack([(x // 4 % 2) * 255, (y // 4 % 2) * 255, x * 0 + 128], axis=-1)
    elif kind == "noise":
        pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3))
    else:
        pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                           (x + y) % 256], axis=-1)  # fmt: skip
    return Image.fromarray(pixels.astype("uint8"), "RGB")


def encoded(image: Image.Image, fmt: str = "JPEG", **save: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def sideways_jpeg(width: int, height: int) -> bytes:
    """A JPEG stored ``width`` x ``height`` whose EXIF says: turn it a quarter (as phones do)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    return encoded(picture(width, height, "stripes"), "JPEG", exif=exif)
