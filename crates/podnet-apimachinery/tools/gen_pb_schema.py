#!/usr/bin/env python3
"""Generate src/protobuf/schema_gen.rs: the wire schema (field numbers and JSON names) of the Kubernetes
protobuf messages podnet decodes.

Field numbers and wire types come from the prost bindings in the k8s-pb crate; JSON property names come
from k8s-openapi's serde field names (proto field names are the JSON names, but prost snake-cases them and
loses capitalisation such as `podIP`). Both crates are read from the local cargo registry
(`cargo fetch` first). Only the messages reachable from ROOTS are emitted.

Usage: tools/gen_pb_schema.py > src/protobuf/schema_gen.rs
"""
import glob, os, re, sys

REG = glob.glob(os.path.expanduser('~/.cargo/registry/src/*/'))
def crate_dir(name):
    for r in REG:
        d = os.path.join(r, name)
        if os.path.isdir(d):
            return d
    sys.exit(f'{name} not found in the cargo registry: run cargo fetch')

# K8S_PB_SRC: a k8s-pb source tree (its src/) when the crate is not in the cargo registry
PB = os.environ.get('K8S_PB_SRC') or crate_dir('k8s-pb-0.9.0') + '/src'
OA = crate_dir('k8s-openapi-0.29.0') + '/src/v1_35'

ROOTS = [
    'k8s.io.api.core.v1.Pod', 'k8s.io.api.core.v1.Service', 'k8s.io.api.core.v1.Namespace',
    'k8s.io.api.core.v1.ConfigMap', 'k8s.io.api.core.v1.Secret', 'k8s.io.api.core.v1.ServiceAccount',
    'k8s.io.api.core.v1.Endpoints', 'k8s.io.api.core.v1.Event', 'k8s.io.api.core.v1.Node',
    'k8s.io.api.core.v1.Binding', 'k8s.io.api.core.v1.ResourceQuota',
    'k8s.io.api.core.v1.LimitRange',
    'k8s.io.api.apps.v1.Deployment', 'k8s.io.api.apps.v1.ReplicaSet',
    'k8s.io.api.apps.v1.DaemonSet', 'k8s.io.api.apps.v1.StatefulSet',
    'k8s.io.api.apps.v1.ControllerRevision',
    'k8s.io.api.batch.v1.Job', 'k8s.io.api.batch.v1.CronJob',
    'k8s.io.api.discovery.v1.EndpointSlice',
    'k8s.io.api.networking.v1.NetworkPolicy', 'k8s.io.api.networking.v1.Ingress',
    'k8s.io.api.networking.v1.IngressClass',
    'k8s.io.api.autoscaling.v1.Scale',
    'k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions',
    'k8s.io.api.coordination.v1.Lease', 'k8s.io.api.authentication.v1.TokenRequest',
    'k8s.io.api.rbac.v1.Role', 'k8s.io.api.rbac.v1.ClusterRole', 'k8s.io.api.rbac.v1.RoleBinding',
    'k8s.io.api.rbac.v1.ClusterRoleBinding',
    'k8s.io.api.authorization.v1.SelfSubjectAccessReview',
    'k8s.io.api.authorization.v1.SelfSubjectRulesReview',
    'k8s.io.api.scheduling.v1.PriorityClass', 'k8s.io.api.policy.v1.PodDisruptionBudget',
]
# Messages decoded by hand (their JSON form is not their proto shape).
SPECIAL = {
    'k8s.io.apimachinery.pkg.apis.meta.v1.Time', 'k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime',
    'k8s.io.apimachinery.pkg.apis.meta.v1.Duration', 'k8s.io.apimachinery.pkg.util.intstr.IntOrString',
    'k8s.io.apimachinery.pkg.api.resource.Quantity', 'k8s.io.apimachinery.pkg.runtime.RawExtension',
    'k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1',
}

def pkg_of(path):
    rel = os.path.relpath(os.path.dirname(path), PB).split(os.sep)
    if rel[0] == 'api':
        return 'k8s.io.api.' + '.'.join(rel[1:])
    if rel[0] == 'apimachinery':
        return 'k8s.io.apimachinery.' + '.'.join(rel[1:])
    return None

def resolve(modparts, ty):
    ty = ty.replace('::prost::alloc::', '')
    parts = ty.split('::')
    base = list(modparts)
    while parts and parts[0] == 'super':
        base.pop(); parts.pop(0)
    full = base + parts
    # full is a rust module path below src: api/core/v1/Name
    if full[0] == 'api':
        return 'k8s.io.api.' + '.'.join(full[1:])
    if full[0] == 'apimachinery':
        return 'k8s.io.apimachinery.' + '.'.join(full[1:])
    return '.'.join(full)

messages = {}
for path in glob.glob(PB + '/**/mod.rs', recursive=True):
    pkg = pkg_of(path)
    if not pkg:
        continue
    modparts = os.path.relpath(os.path.dirname(path), PB).split(os.sep)
    src = open(path).read()
    for m in re.finditer(r'pub struct (\w+) \{(.*?)\n\}', src, re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        for chunk in body.split('#[prost(')[1:]:
            attr, rest = chunk.split(')]', 1)
            rest = '\n'.join(l for l in rest.split('\n') if not l.strip().startswith('//'))
            fm = re.match(r'\s*pub (r#)?(\w+):\s*(.*)', rest, re.S)
            fname = fm.group(2)
            fty = ' '.join(fm.group(3).split()).rstrip(',').strip()
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            if attr.startswith('btree_map') or attr.startswith('map'):
                kv = re.search(r'map = "(\w+), (\w+)"', attr)
                vt = kv.group(2)
                if vt == 'message':
                    inner = re.search(r'BTreeMap<\s*[^,]+,\s*(.+?),?\s*>$', fty).group(1).strip()
                    vt = 'msg:' + resolve(modparts, inner)
                fields.append((tag, fname, 'map', vt))
                continue
            kind = attr.split(',')[0].strip()
            card = 'repeated' if 'repeated' in attr else 'single'
            if kind.startswith('bytes'):
                kind = 'bytes'
            if kind == 'message':
                # a long type is wrapped over lines, leaving a trailing comma inside the brackets
                inner = re.search(r'(?:Option|Vec)<(.+)>$', fty).group(1).strip().rstrip(',').strip()
                kind = 'msg:' + resolve(modparts, inner)
            fields.append((tag, fname, card, kind))
        messages[pkg + '.' + name] = fields

# JSON names from k8s-openapi: "jsonName" => Field::Key_snake
json_names = {}
for path in glob.glob(OA + '/**/*.rs', recursive=True):
    src = open(path).read()
    sm = re.search(r'fn schema_name\(\) -> std::borrow::Cow<\'static, str> \{\s*"([^"]+)"', src)
    if not sm:
        continue
    json_names[sm.group(1)] = re.findall(r'"([A-Za-z0-9$_-]+)" => Field::Key_', src)

oa_by_lower = {k.lower(): k for k in json_names}

# Messages that exist only to be embedded inline: their fields are named in the embedding type.
INLINE_ONLY = {
    'k8s.io.api.core.v1.EphemeralContainerCommon': 'io.k8s.api.core.v1.EphemeralContainer',
    'k8s.io.api.core.v1.ProbeHandler': 'io.k8s.api.core.v1.Probe',
    'k8s.io.api.core.v1.VolumeSource': 'io.k8s.api.core.v1.Volume',
    'k8s.io.api.networking.v1.IngressRuleValue': 'io.k8s.api.networking.v1.IngressRule',
}

def norm(s):
    return s.replace('_', '').lower()

def json_name(msg, snake):
    # prost renames acronyms (AWSElasticBlockStore -> AwsElasticBlockStore): match case-insensitively
    oa = oa_by_lower.get(('io.k8s.' + msg[len('k8s.io.'):]).lower()) or INLINE_ONLY.get(msg)
    if oa is None:
        sys.exit(f'no k8s-openapi type for {msg}')
    for cand in json_names[oa]:
        if norm(cand) == norm(snake):
            return cand
    return None

reach, todo = set(), list(ROOTS)
while todo:
    m = todo.pop()
    if m in reach or m in SPECIAL:
        continue
    if m not in messages:
        sys.exit(f'unknown message {m}')
    reach.add(m)
    for (_, _, _, kind) in messages[m]:
        if kind.startswith('msg:'):
            todo.append(kind[4:])

KIND = {'string': 'Str', 'bool': 'Bool', 'int32': 'I32', 'int64': 'I64', 'bytes': 'Bytes', 'double': 'F64'}
def kind_expr(k):
    if k.startswith('msg:'):
        t = k[4:]
        special = {
            'k8s.io.apimachinery.pkg.apis.meta.v1.Time': 'Time',
            'k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime': 'Time',
            'k8s.io.apimachinery.pkg.apis.meta.v1.Duration': 'Duration',
            'k8s.io.apimachinery.pkg.util.intstr.IntOrString': 'IntOrString',
            'k8s.io.apimachinery.pkg.api.resource.Quantity': 'Quantity',
            'k8s.io.apimachinery.pkg.runtime.RawExtension': 'RawExtension',
            'k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1': 'FieldsV1',
        }.get(t)
        return f'Kind::{special}' if special else f'Kind::Msg("{t}")'
    return 'Kind::' + KIND[k]

out = ['// @generated by tools/gen_pb_schema.py from the k8s-pb 0.9 and k8s-openapi 0.29 (v1_35) crates.',
       '// Do not edit: regenerate. Field numbers and JSON names of the Kubernetes protobuf messages podnet decodes.',
       '',
       'use super::schema::{Card, Field, Kind, Message};',
       '',
       '/// Sorted by name (binary-searched).',
       'pub(crate) static MESSAGES: &[Message] = &[']
for m in sorted(reach):
    out.append(f'    Message {{ name: "{m}", fields: &[')
    for (tag, snake, card, kind) in sorted(messages[m]):
        c = {'single': 'Card::Single', 'repeated': 'Card::Repeated', 'map': 'Card::Map'}[card]
        jn = json_name(m, snake)
        if jn is None:
            # Go embeds the struct inline (json:",inline"): its fields belong to the parent object.
            if not (card == 'single' and kind.startswith('msg:')):
                sys.exit(f'no JSON name for {m}.{snake}')
            print(f'inline: {m}.{snake}', file=sys.stderr)
            c, jn = 'Card::Inline', ''
        out.append(f'        Field {{ tag: {tag}, json: "{jn}", card: {c}, kind: {kind_expr(kind)} }},')
    out.append('    ] },')
out.append('];')
print('\n'.join(out))
