"""Lowering stage: template kernels — matmul and fused attention, with fused epilogues.

The scheduler (kernels/fusion.py) hands every node whose op kind is MATMUL to
templates/fusion.py's `place_template` and offers each pointwise output to its `try_epilogue`
first; lowering.py asks `generate_template` for the source of such a plan; runtime/launch.py asks
templates/launch.py's `template_setup` for the launch configuration of its kernels. The op's
`triton` field names the template ("matmul", "attention", "attention_lse", "attention_delta",
"attention_dq", "attention_dkv").
"""
from __future__ import annotations


def generate_template(sched, plan, layout: dict, wide: bool, name: str):
    """Generated source for a template plan (see KernelPlan.template)."""
    template = plan.template.template
    if template == "matmul":
        from tritonflow.kernels.templates.matmul import generate_matmul
        return generate_matmul(sched, plan, layout, wide, name)
    from tritonflow.kernels.templates.attention import generate_attention
    return generate_attention(sched, plan, layout, wide, name)


__all__ = ["generate_template"]
