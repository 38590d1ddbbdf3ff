"""The base optimizer's own step through the per-sample protocol: what
SGD (or Adam) does, with per-sample loss weights when a sampler gives them
(SGD + InfoBatch)."""

from ..step import Closure, Method, StepContext, StepResult


class Plain(Method):
    """One forward/backward at w, the base optimizer's update (no
    perturbation). The same update as mmengine's ``OptimWrapper``, for a
    model that hands the per-sample losses to the wrapper."""

    infobatch_passes = ('first',)

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        return self.plain_step(closure, ctx, sam=None)  # no SAM passes
