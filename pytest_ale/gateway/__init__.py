"""The model gateway: the one door out of a sandbox, the trust boundary and the meter.

In-sandbox harnesses talk to models only through it. It holds the real API keys (they
never enter a sandbox), speaks the harnesses' wire formats (Anthropic Messages, OpenAI
Responses and Chat Completions, Gemini), meters tokens and cost per trial, enforces
budgets, retries rate limits, records and replays traffic, and can answer from a
scripted model with no upstream at all. ``runtime.gateway()`` is this process's instance.
"""
