"""Attention for padding-free packing: which implementation the model loads with and, when no flash-attention package
is installed, PyTorch's own variable-length kernel (torch.nn.attention.varlen.varlen_attn, torch 2.10 and later)
registered with transformers under the name "varlen". Packed rows then attend only to themselves, with no padding
and no mask, instead of sdpa with a block-diagonal mask (about 2.5x slower per token on an H100)."""

import importlib.util

from .errors import BadInput

VARLEN = "varlen"
HUB_FLASH_KERNEL = "kernels-community/flash-attn2"  # what transformers loads through the `kernels` package


def choose_attention(requested: str | None, device: str, padding_free: bool, half_precision: bool,
                     config) -> tuple[str | None, str]:
    """The attn_implementation to load the model with (None: the model's default, sdpa) and a note for the Resolved
    line and run.json. With padding-free packing on a CUDA GPU, fastest first: the flash-attn package, a prebuilt
    Hub kernel through the `kernels` package (it needs the Hub), PyTorch's varlen kernel. Other runs keep the
    default. A person's --attn_implementation always wins."""
    from huggingface_hub import constants

    if requested == VARLEN:
        problem = flash_problem(device, half_precision) or varlen_problem(config)
        if problem:
            raise BadInput(f"--attn_implementation varlen cannot run here ({problem}); use sdpa.")
        register_varlen_attention()
    if requested:
        return requested, f"{requested} (given)"
    problem = flash_problem(device, half_precision) or (None if padding_free else "no padding-free packing")
    if problem:
        return None, f"default ({problem})"
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2", "flash_attention_2 (flash-attn installed)"
    if importlib.util.find_spec("kernels") is not None and not constants.HF_HUB_OFFLINE:
        return HUB_FLASH_KERNEL, f"{HUB_FLASH_KERNEL} (prebuilt Hub kernel, kernels installed)"
    problem = varlen_problem(config)
    if problem:
        return None, f"default (varlen kernel unusable: {problem})"
    register_varlen_attention()
    return VARLEN, "varlen (torch varlen_attn over the packed rows; no flash-attn installed)"


def flash_problem(device: str, half_precision: bool) -> str | None:
    """Why no flash kernel can run here, or None: they need a CUDA GPU of compute capability 8.0+, in bf16 or fp16."""
    import torch

    if device != "cuda":
        return "no CUDA GPU"
    capability = torch.cuda.get_device_capability()
    if capability < (8, 0):
        return f"GPU compute capability {capability[0]}.{capability[1]}; flash kernels need 8.0+"
    if not half_precision:
        return "fp32 compute; flash kernels need bf16 or fp16"
    return None


def varlen_problem(config) -> str | None:
    """Why torch's varlen kernel cannot run this model, or None: it needs torch 2.10+ and full causal attention with
    no softcapping, sliding window or dropout."""
    import torch

    text = config.get_text_config()
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen; it needs torch 2.10 or later"
    if getattr(text, "attn_logit_softcapping", None):
        return "the model softcaps attention logits"
    if any(kind != "full_attention" for kind in getattr(text, "layer_types", None) or []):
        return "the model has sliding-window or linear-attention layers"
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        return "the model uses sliding-window attention"
    if getattr(text, "attention_dropout", 0.0):
        return "the model uses attention dropout"
    return None


def register_varlen_attention():
    """Makes "varlen" a valid attn_implementation for transformers, with its mask function."""
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN, varlen_mask)


def varlen_mask(attention_mask=None, **kwargs):
    """No mask for rows without padding (the kernel delimits them); sdpa's mask for padded rows, which take the sdpa
    path. Building sdpa's block-diagonal mask for packed rows would cost tokens^2 bytes for nothing."""
    from transformers.masking_utils import sdpa_mask

    return None if attention_mask is None else sdpa_mask(attention_mask=attention_mask, **kwargs)


def varlen_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: float | None = None, sliding_window: int | None = None,
                             softcap: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' attention function over torch's varlen_attn. query/key/value: (batch, heads, tokens, dim). Rows
    are delimited by TRL's padding-free cu_seq_lens_q/k and max_length_q/k, else by where position_ids restart;
    padded rows (a 4D mask) and decoding with a cache take the sdpa path with sdpa's mask."""
    import inspect

    import torch
    from torch.nn.attention import varlen
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if dropout or softcap or sliding_window or kwargs.get("s_aux") is not None:
        raise ValueError("The varlen attention kernel has no dropout, softcapping, sliding window or attention sinks; "
                         "load this model with --attn_implementation sdpa.")
    batch, heads, tokens, dim = query.shape
    if kwargs.get("cu_seq_lens_q") is None:
        positions = kwargs.get("position_ids")
        positions = torch.arange(tokens, device=query.device) if positions is None else positions
        starts = (positions.expand(batch, -1).reshape(-1) == 0).nonzero().flatten()
        bounds = torch.cat([starts, starts.new_tensor([batch * tokens])]).to(torch.int32)
        longest = int(bounds.diff().max())
        kwargs |= {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": longest, "max_length_k": longest}
    dtype = query.dtype
    if dtype == torch.float32 and torch.is_autocast_enabled(query.device.type):  # fp32 norms under 16-bit autocast
        dtype = torch.get_autocast_dtype(query.device.type)
    # (batch, heads, tokens, dim) -> (batch * tokens, heads, dim): the packed rows one after another
    query, key, value = (t.transpose(1, 2).reshape(batch * tokens, t.shape[1], t.shape[3]).to(dtype).contiguous()
                         for t in (query, key, value))
    # The signature changed between releases: torch 2.10 takes is_causal and no scale; 2.11 takes scale and
    # window_size ((-1, 0) is causal, a tuple); 2.13 adds enable_gqa for fewer key/value heads than query heads.
    accepted = inspect.signature(varlen.varlen_attn).parameters
    causal = module.is_causal if is_causal is None else is_causal
    options = {"is_causal": causal} if "is_causal" in accepted else {"window_size": (-1, 0) if causal else (-1, -1)}
    if "scale" in accepted:
        options["scale"] = scaling
    elif scaling not in (None, dim**-0.5):  # the kernel's own scale is dim ** -0.5
        query = query * (scaling * dim**0.5)
    if key.shape[1] != heads:
        if "enable_gqa" in accepted:
            options["enable_gqa"] = True
        else:
            key, value = (t.repeat_interleave(heads // t.shape[1], dim=1) for t in (key, value))
    output = varlen.varlen_attn(query, key, value, kwargs["cu_seq_lens_q"], kwargs["cu_seq_lens_k"],
                                kwargs["max_length_q"], kwargs["max_length_k"], **options)
    return output.reshape(batch, tokens, heads, -1), None
