"""REST endpoints of this context (mounted under /api/v1 by kizuna.config.api)."""

from ninja import Router

router = Router()
