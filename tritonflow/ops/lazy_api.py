"""`T`: the tritonflow function namespace, resolved on first use.

vjp rules are written with tritonflow functions, but the function layer itself is built on the op
table; this late binding breaks the import cycle without scattering imports through every rule.
"""


class _LazyAPI:
    def __getattr__(self, name: str):
        import tritonflow.api as api
        return getattr(api, name)


T = _LazyAPI()
