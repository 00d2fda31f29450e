"""A small renderer for the Go text/template subset Ollama's chat templates use, written from the Go documentation
(https://pkg.go.dev/text/template) for tests only: it is the independent oracle for the Modelfile TEMPLATE that
`prefswift export --to ollama` writes.

Supported: text; `{{- ... -}}` trim markers; `{{ PIPE }}` output; `if` / `else if` / `else` / `end`;
`range $i, $v := PIPE` and `range PIPE`; `$x := PIPE`; operands `.`, `.Field`, `$`, `$.Field`, `$x`, `$x.Field`,
"strings", integers, `(PIPE)`; functions `eq ne and or not len slice index`. Go's truth: false, 0, "", empty and
nil are false.
"""
import json
import re

_TOKEN = re.compile(r'\s*(\(|\)|:=|,|"(?:[^"\\]|\\.)*"|-?\d+|\$?[A-Za-z_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\$[A-Za-z_]\w*'
                    r'|\$|\.|[A-Za-z_]\w*)')


def _lex(template: str):
    """[("text", s) | ("action", s)] with trim markers applied."""
    parts = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            parts.append(("text", template[pos:]))
            break
        end = template.find("}}", start)
        if end < 0:
            raise ValueError("unclosed action")
        text = template[pos:start]
        action = template[start + 2:end]
        if action.startswith("- "):
            text = text.rstrip()
            action = action[2:]
        trim_after = action.endswith(" -")
        if trim_after:
            action = action[:-2]
        parts.append(("text", text))
        parts.append(("action", action.strip()))
        pos = end + 2
        if trim_after:
            while pos < len(template) and template[pos] in " \t\r\n":
                pos += 1
    return parts


def _tokens(expr: str):
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse {expr[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos] == " ":
            pos += 1
    return out


def truth(v) -> bool:
    return not (v is None or v is False or v == 0 and not isinstance(v, str) or (hasattr(v, "__len__") and not len(v)))


FUNCS = {
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda a: not truth(a),
    "len": lambda a: len(a),
    "slice": lambda a, *ij: a[ij[0]:ij[1]] if len(ij) > 1 else a[ij[0]:],
    "index": lambda a, *ks: _index(a, ks),
}


def _index(a, keys):
    for k in keys:
        a = a[k]
    return a


class _Eval:
    def __init__(self, root):
        self.root = root

    def field(self, obj, path):
        for name in path:
            obj = obj[name] if isinstance(obj, dict) else getattr(obj, name)
        return obj

    def operand(self, tok, dot, vars_):
        if tok.startswith('"'):
            return json.loads(tok)
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if tok == ".":
            return dot
        if tok == "$":
            return self.root
        if tok.startswith("$"):
            name, *path = tok.split(".")
            base = self.root if name == "$" else vars_[name]
            return self.field(base, path)
        if tok.startswith("."):
            return self.field(dot, tok[1:].split("."))
        raise ValueError(f"unknown operand {tok}")

    def parse_args(self, toks, i, dot, vars_):
        """Values of the operands from toks[i] to the end or a closing parenthesis; (values, next index)."""
        vals = []
        while i < len(toks) and toks[i] != ")":
            if toks[i] == "(":
                v, i = self.pipeline(toks, i + 1, dot, vars_)
                i += 1  # ')'
            else:
                v, i = self.operand(toks[i], dot, vars_), i + 1
            vals.append(v)
        return vals, i

    def pipeline(self, toks, i, dot, vars_):
        if toks[i] in FUNCS or toks[i] in ("and", "or"):
            name = toks[i]
            args, i = self.parse_args(toks, i + 1, dot, vars_)
            if name == "and":
                out = args[-1]
                for a in args:
                    if not truth(a):
                        out = a
                        break
                return out, i
            if name == "or":
                return next((a for a in args if truth(a)), args[-1]), i
            return FUNCS[name](*args), i
        vals, i = self.parse_args(toks, i, dot, vars_)
        if len(vals) != 1:
            raise ValueError(f"unexpected operands {toks}")
        return vals[0], i

    def value(self, expr, dot, vars_):
        return self.pipeline(_tokens(expr), 0, dot, vars_)[0]


def _parse(parts, i=0, stop=("end",)):
    """[(kind, ...)] nodes up to a stop keyword; returns (nodes, index of the stop action, the stop action)."""
    nodes = []
    while i < len(parts):
        kind, s = parts[i]
        if kind == "text":
            if s:
                nodes.append(("text", s))
            i += 1
            continue
        word = s.split(" ", 1)[0]
        if word in stop or s.startswith("else"):
            return nodes, i, s
        if word == "if":
            branches, else_body = [], []
            cond = s[3:]
            while True:
                body, i, at = _parse(parts, i + 1, stop=("end",))
                branches.append((cond, body))
                if at.startswith("else if "):
                    cond = at[len("else if "):]
                    continue
                if at == "else":
                    else_body, i, at = _parse(parts, i + 1, stop=("end",))
                break
            nodes.append(("if", branches, else_body))
            i += 1
        elif word == "range":
            spec = s[len("range "):]
            names = []
            if ":=" in spec:
                lhs, spec = spec.split(":=", 1)
                names = [n.strip() for n in lhs.split(",")]
            body, i, _ = _parse(parts, i + 1, stop=("end",))
            nodes.append(("range", names, spec.strip(), body))
            i += 1
        elif re.match(r"^\$\w+\s*:?=", s):
            name, expr = re.split(r"\s*:?=\s*", s, maxsplit=1)
            nodes.append(("set", name, expr))
            i += 1
        else:
            nodes.append(("out", s))
            i += 1
    return nodes, i, None


def _run(nodes, ev, dot, vars_, out):
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "out":
            v = ev.value(node[1], dot, vars_)
            out.append("" if v is None else str(v))
        elif kind == "set":
            vars_[node[1]] = ev.value(node[2], dot, vars_)
        elif kind == "if":
            for cond, body in node[1]:
                if truth(ev.value(cond, dot, vars_)):
                    _run(body, ev, dot, dict(vars_), out)
                    break
            else:
                _run(node[2], ev, dot, dict(vars_), out)
        elif kind == "range":
            seq = ev.value(node[2], dot, vars_)
            for i, item in enumerate(seq):
                scope = dict(vars_)
                if len(node[1]) == 2:
                    scope[node[1][0]], scope[node[1][1]] = i, item
                elif len(node[1]) == 1:
                    scope[node[1][0]] = item
                _run(node[3], ev, item, scope, out)


def render(template: str, data: dict) -> str:
    nodes, _, _ = _parse(_lex(template))
    out = []
    _run(nodes, _Eval(data), data, {}, out)
    return "".join(out)
