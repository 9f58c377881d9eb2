"""Typed route dependencies: what a route needs from the application's state, named and typed
(``Annotated[..., Depends(...)]``), so a handler's signature says what it uses."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.budget import Budget
from app.config import Settings
from app.jobs import JobStore
from app.registry import Registry
from app.text_to_image import PromptCache


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _registry(request: Request) -> Registry:
    return request.app.state.registry


def _jobs(request: Request) -> JobStore:
    return request.app.state.jobs


def _budget(request: Request) -> Budget:
    return request.app.state.budget


def _prompt_cache(request: Request) -> PromptCache:
    return request.app.state.prompt_cache


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[Registry, Depends(_registry)]
JobsDep = Annotated[JobStore, Depends(_jobs)]
BudgetDep = Annotated[Budget, Depends(_budget)]
PromptCacheDep = Annotated[PromptCache, Depends(_prompt_cache)]
