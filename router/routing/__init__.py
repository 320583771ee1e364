"""The routing brain: token counts, signals, the classifier, the policy and the dry-run preview.

Pure CPU engines: nothing here imports aiohttp or middleware, so each piece can be tested alone.
"""
