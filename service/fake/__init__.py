"""The fake OpenAI upstream (spec-checked REST, WebRTC calls, sideband), for dev mode, tests
and benchmarks; imported by production code never: only `service.dev` and the CLI's dev
commands use it.
"""
