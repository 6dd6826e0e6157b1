"""A small, safe expression language for playbook conditions.

``when: "preview.files > 0"`` and ``success_check: "max(pluck(after.filesystems, 'percent_used')) < 90"``
are parsed with :mod:`ast` and evaluated over the step outputs of the run. Only literals,
names of earlier steps, ``.field`` and ``[index]`` access, comparisons, ``and``/``or``/``not``,
arithmetic and a handful of pure functions are allowed: a playbook cannot run code.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from mspclaw.errors import ConditionError


def _pluck(items: Any, key: str) -> list[Any]:
    if not isinstance(items, list):
        raise ConditionError("pluck() needs a list")
    return [item.get(key) for item in items if isinstance(item, dict)]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "max": max, "min": min, "sum": sum, "any": any, "all": all, "abs": abs, "round": round,
    "pluck": _pluck,
}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}


def parse(expr: str) -> ast.Expression:
    """Parse and check an expression once (at playbook load), so a typo fails early."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"invalid condition {expr!r}: {exc.msg}") from exc
    for node in ast.walk(tree):
        allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare,
                   ast.Name, ast.Load, ast.Attribute, ast.Subscript, ast.Constant, ast.Call, ast.BinOp,
                   ast.List, ast.Tuple, *_COMPARE, *_BINARY)
        if not isinstance(node, allowed):
            raise ConditionError(f"invalid condition {expr!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise ConditionError(f"invalid condition {expr!r}: only {', '.join(FUNCTIONS)} may be called")
    return tree


@functools.lru_cache(maxsize=4096)
def _parsed(expr: str) -> ast.Expression:
    """:func:`parse`, once per expression: the playbooks' conditions are few, and ``evaluate`` runs them
    for every ticket (the trees are only read)."""
    return parse(expr)


def evaluate(expr: str, names: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` with step outputs as ``names``; missing data raises :class:`ConditionError`."""
    return _eval(_parsed(expr).body, names, expr)


def _eval(node: ast.AST, names: Mapping[str, Any], expr: str) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            if name in ("true", "false", "none"):
                return {"true": True, "false": False, "none": None}[name]
            if name not in names:
                raise ConditionError(f"{expr!r}: no step output named {name!r}")
            return names[name]
        case ast.Attribute(value=inner, attr=attr):
            base = _eval(inner, names, expr)
            if not isinstance(base, dict) or attr not in base:
                raise ConditionError(f"{expr!r}: no field {attr!r}")
            return base[attr]
        case ast.Subscript(value=inner, slice=index):
            base, key = _eval(inner, names, expr), _eval(index, names, expr)
            try:
                return base[key]
            except (KeyError, IndexError, TypeError) as exc:
                raise ConditionError(f"{expr!r}: no item {key!r}") from exc
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_eval(v, names, expr) for v in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(_eval(v, names, expr) for v in values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, names, expr)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, names, expr)
        case ast.BinOp(left=left, op=binop, right=right):
            return _apply(_BINARY[type(binop)], _eval(left, names, expr), _eval(right, names, expr), expr=expr)
        case ast.Compare(left=left, ops=ops, comparators=rights):
            current = _eval(left, names, expr)
            for cmp, right_node in zip(ops, rights, strict=True):
                right = _eval(right_node, names, expr)
                if not _apply(_COMPARE[type(cmp)], current, right, expr=expr):
                    return False
                current = right
            return True
        case ast.Call(func=ast.Name(id=fname), args=args):
            return _apply(FUNCTIONS[fname], *(_eval(a, names, expr) for a in args), expr=expr)
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            return [_eval(e, names, expr) for e in elts]
    raise ConditionError(f"{expr!r}: cannot evaluate {type(node).__name__}")


def _apply(fn: Callable[..., Any], *args: Any, expr: str) -> Any:
    try:
        return fn(*args)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ConditionError(f"{expr!r}: {exc}") from exc
