// Compiling and dispatching a WGSL kernel. Every kernel entry in src/kernels
// validates its inputs, then calls `dispatchKernel` with its resources *by the
// names the shader declares*: the bind group layout, binding order and uniform
// struct layout are all read from the shader with wgsl_reflect, never restated
// in TypeScript. Pipelines are cached per (shader, entry point, override
// constants) on each device.
//
// The layout of a pipeline holds only the bindings its entry point statically
// uses (wgsl_reflect's per-entry resources, helpers it calls included), not
// every binding of the module: a shader's entry points may together declare
// more storage buffers than a device allows per shader stage (the WebGPU
// spec guarantees 8; Chromium's SwiftShader allows 10) as long as each entry
// point stays within the limit.

import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { Gpu } from '../device.js';
import { BufferUsage, Tensor, shapeString } from '../tensor.js';
import { shaderSources } from './shaders.gen.js';

export type OverrideValue = number | boolean;

export interface KernelSource {
  /** File name in shaders/ without `.wgsl`. */
  shader: string;
  /** Compute entry point; defaults to the shader's only one. */
  entry?: string;
  /** Values for the shader's `override` declarations (specialization constants). */
  constants?: Record<string, OverrideValue>;
}

interface UniformMember {
  name: string;
  offset: number;
  /** Scalar type of the member or of its vector elements. */
  scalar: 'f32' | 'i32' | 'u32';
  /** 1 for scalars, N for vecN. */
  count: number;
}

interface BindingInfo {
  name: string;
  group: number;
  binding: number;
  kind: 'storage' | 'uniform';
  readOnly: boolean;
  uniformSize: number;
  members: UniformMember[];
}

interface ShaderInfo {
  code: string;
  module: GPUShaderModule;
  /** Every binding the module declares. */
  bindings: BindingInfo[];
  /** Each compute entry point's name → the bindings it statically uses, in declaration order. */
  entries: Map<string, BindingInfo[]>;
  overrides: Set<string>;
}

interface CompiledKernel {
  entry: string;
  pipeline: GPUComputePipeline;
  layouts: GPUBindGroupLayout[];
  info: ShaderInfo;
  /** The bindings of this entry point: what its layouts hold and a dispatch must supply. */
  bindings: BindingInfo[];
}

/** Uniform values by struct member name; vectors as arrays. */
export type UniformValues = Record<string, number | readonly number[]>;
export type KernelResource = Tensor | GPUBuffer | UniformValues;

const shaderCache = new WeakMap<Gpu, Map<string, ShaderInfo>>();
const pipelineCache = new WeakMap<Gpu, Map<string, CompiledKernel>>();
const reflectCache = new Map<string, Omit<ShaderInfo, 'module'>>();

function reflect(shader: string): Omit<ShaderInfo, 'module'> {
  const cached = reflectCache.get(shader);
  if (cached) return cached;
  const code = shaderSources[shader];
  if (code === undefined) throw new Error(`kernel: no shader named '${shader}' in shaders/ (known: ${Object.keys(shaderSources).join(', ')})`);
  const r = new WgslReflect(code);
  const bindings: BindingInfo[] = [];
  for (const group of r.getBindGroups()) {
    for (const b of group) {
      if (!b) continue;
      const isUniform = b.resourceType === 0;
      const members: UniformMember[] = [];
      if (isUniform) {
        for (const m of b.members ?? []) {
          const t = m.type as unknown as { name: string; format?: { name: string } };
          const scalarName = (t.format?.name ?? t.name) as string;
          if (scalarName !== 'f32' && scalarName !== 'i32' && scalarName !== 'u32') {
            throw new Error(`kernel ${shader}: uniform member ${b.name}.${m.name} has type ${t.name}; only 32-bit scalars and vectors are supported`);
          }
          const count = t.name.startsWith('vec') ? Number(t.name[3]) : 1;
          members.push({ name: m.name, offset: m.offset, scalar: scalarName, count });
        }
      }
      bindings.push({
        name: b.name,
        group: b.group,
        binding: b.binding,
        kind: isUniform ? 'uniform' : 'storage',
        readOnly: isUniform || b.access === 'read',
        uniformSize: isUniform ? b.size : 0,
        members,
      });
    }
  }
  const entries = new Map<string, BindingInfo[]>();
  for (const e of r.entry.compute) {
    const used = new Set(e.resources.map((res) => `${res.group}:${res.binding}`));
    entries.set(e.name, bindings.filter((b) => used.has(`${b.group}:${b.binding}`)));
  }
  const info = { code, bindings, entries, overrides: new Set(r.overrides.map((o) => o.name)) };
  reflectCache.set(shader, info);
  return info;
}

/**
 * The storage buffers each compute entry point of `shader` binds, read from
 * the shader: what counts against a device's maxStorageBuffersPerShaderStage.
 */
export function storageBuffersPerEntry(shader: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [entry, bindings] of reflect(shader).entries) counts.set(entry, bindings.filter((b) => b.kind === 'storage').length);
  return counts;
}

function shaderInfo(gpu: Gpu, shader: string): ShaderInfo {
  let map = shaderCache.get(gpu);
  if (!map) shaderCache.set(gpu, (map = new Map()));
  let info = map.get(shader);
  if (!info) {
    const r = reflect(shader);
    const module = gpu.device.createShaderModule({ code: r.code, label: shader });
    info = { ...r, module };
    map.set(shader, info);
  }
  return info;
}

/** The cached pipeline for a kernel specialization, compiled on first use. */
export function compileKernel(gpu: Gpu, src: KernelSource): CompiledKernel {
  const constants = src.constants ?? {};
  const key = `${src.shader}|${src.entry ?? ''}|${Object.keys(constants).sort().map((k) => `${k}=${Number(constants[k])}`).join(',')}`;
  let map = pipelineCache.get(gpu);
  if (!map) pipelineCache.set(gpu, (map = new Map()));
  const hit = map.get(key);
  if (hit) return hit;
  const info = shaderInfo(gpu, src.shader);
  const entry = src.entry ?? [...info.entries.keys()][0];
  const bindings = info.entries.get(entry);
  if (!bindings) throw new Error(`kernel ${src.shader}: no compute entry point '${entry}' (has ${[...info.entries.keys()].join(', ')})`);
  for (const name of Object.keys(constants)) {
    if (!info.overrides.has(name)) throw new Error(`kernel ${src.shader}: no override constant '${name}' (has ${[...info.overrides].join(', ') || 'none'})`);
  }
  // Checked here, before Dawn would fail pipeline creation asynchronously with a less direct message.
  const storage = bindings.filter((b) => b.kind === 'storage').length;
  const limit = gpu.limits.maxStorageBuffersPerShaderStage;
  if (storage > limit) {
    throw new Error(`kernel ${src.shader}/${entry}: binds ${storage} storage buffers, the device's maxStorageBuffersPerShaderStage is ${limit}`);
  }
  const groups = Math.max(0, ...bindings.map((b) => b.group + 1));
  const layouts: GPUBindGroupLayout[] = [];
  for (let g = 0; g < groups; g++) {
    layouts.push(
      gpu.device.createBindGroupLayout({
        label: `${src.shader}/${entry}/group${g}`,
        entries: bindings
          .filter((b) => b.group === g)
          .map((b) => ({
            binding: b.binding,
            visibility: 0x4 /* GPUShaderStage.COMPUTE */,
            buffer: { type: b.kind === 'uniform' ? 'uniform' : b.readOnly ? 'read-only-storage' : 'storage' },
          })),
      }),
    );
  }
  const numeric: Record<string, number> = {};
  for (const [k, v] of Object.entries(constants)) numeric[k] = Number(v);
  gpu.device.pushErrorScope('validation');
  const pipeline = gpu.device.createComputePipeline({
    label: key,
    layout: gpu.device.createPipelineLayout({ bindGroupLayouts: layouts }),
    compute: { module: info.module, entryPoint: entry, constants: numeric },
  });
  gpu.device.popErrorScope().then((err) => {
    if (err) gpu.reportError(new Error(`kernel ${key}: pipeline creation failed: ${err.message}`));
  });
  const compiled = { entry, pipeline, layouts, info, bindings };
  map.set(key, compiled);
  return compiled;
}

function isTensor(r: KernelResource): r is Tensor {
  return r instanceof Tensor;
}

function isBuffer(r: KernelResource): r is GPUBuffer {
  return typeof (r as GPUBuffer).mapAsync === 'function';
}

function packUniform(op: string, b: BindingInfo, values: UniformValues): ArrayBuffer {
  const host = new ArrayBuffer(Math.max(16, Math.ceil(b.uniformSize / 16) * 16));
  const view = new DataView(host);
  for (const m of b.members) {
    const v = values[m.name];
    if (v === undefined) throw new Error(`${op}: uniform ${b.name}.${m.name} not supplied`);
    const arr = typeof v === 'number' ? [v] : v;
    if (arr.length !== m.count) throw new Error(`${op}: uniform ${b.name}.${m.name} needs ${m.count} value(s), got ${arr.length}`);
    for (let i = 0; i < m.count; i++) {
      const x = arr[i];
      const at = m.offset + 4 * i;
      if (m.scalar === 'f32') view.setFloat32(at, x, true);
      else {
        if (!Number.isInteger(x)) throw new Error(`${op}: uniform ${b.name}.${m.name} is ${m.scalar}, got ${x}`);
        if (m.scalar === 'u32') {
          if (x < 0 || x > 0xffffffff) throw new Error(`${op}: uniform ${b.name}.${m.name} = ${x} does not fit u32`);
          view.setUint32(at, x, true);
        } else view.setInt32(at, x, true);
      }
    }
  }
  for (const name of Object.keys(values)) {
    if (!b.members.some((m) => m.name === name)) throw new Error(`${op}: uniform ${b.name} has no member '${name}'`);
  }
  return host;
}

/**
 * Records one dispatch into the device's open command encoder.
 * `resources` maps each binding name the entry point uses to a Tensor, a raw
 * buffer, or (for a uniform struct) its member values. A name the shader
 * declares but this entry point does not use is ignored (one resource table
 * can serve all of a shader's entry points); a name the shader does not
 * declare is an error.
 */
export function dispatchKernel(
  gpu: Gpu,
  op: string,
  src: KernelSource,
  resources: Record<string, KernelResource>,
  workgroups: readonly [number, number?, number?],
): void {
  gpu.assertAlive(op);
  const kernel = compileKernel(gpu, src);
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
  const [x, y = 1, z = 1] = workgroups;
  for (const d of [x, y, z]) {
    if (!Number.isInteger(d) || d < 0 || d > maxGroups) {
      throw new Error(`${op}: dispatch of ${shapeString([x, y, z])} workgroups exceeds the device's maxComputeWorkgroupsPerDimension ${maxGroups}`);
    }
  }
  for (const name of Object.keys(resources)) {
    if (!kernel.info.bindings.some((b) => b.name === name)) throw new Error(`${op}: shader ${src.shader} has no binding '${name}'`);
  }
  const temporaries: GPUBuffer[] = [];
  const entriesByGroup: GPUBindGroupEntry[][] = kernel.layouts.map(() => []);
  for (const b of kernel.bindings) {
    const r = resources[b.name];
    if (r === undefined) throw new Error(`${op}: shader ${src.shader} binding '${b.name}' (used by entry point '${kernel.entry}') was not supplied`);
    let buffer: GPUBuffer;
    let size: number;
    if (b.kind === 'uniform') {
      if (isTensor(r) || isBuffer(r)) throw new Error(`${op}: binding '${b.name}' is a uniform struct; pass its member values`);
      const host = packUniform(op, b, r);
      buffer = gpu.pool.acquire(host.byteLength, BufferUsage.UNIFORM | BufferUsage.COPY_DST, `${op}.${b.name}`);
      gpu.device.queue.writeBuffer(buffer, 0, host);
      temporaries.push(buffer);
      size = host.byteLength;
    } else if (isTensor(r)) {
      buffer = r.buffer;
      size = Math.max(4, Math.ceil(r.byteLength / 4) * 4);
      if (r.byteLength > maxBinding) {
        throw new Error(`${op}: input '${b.name}' ${shapeString(r.shape)} ${r.dtype} is ${r.byteLength} bytes, over the device's maxStorageBufferBindingSize of ${maxBinding} bytes`);
      }
    } else if (isBuffer(r)) {
      buffer = r;
      size = Math.min(r.size, maxBinding);
    } else {
      throw new Error(`${op}: binding '${b.name}' is a storage buffer; pass a Tensor`);
    }
    entriesByGroup[b.group].push({ binding: b.binding, resource: { buffer, offset: 0, size } });
  }
  const pass = gpu.commandEncoder().beginComputePass({ label: op });
  pass.setPipeline(kernel.pipeline);
  kernel.layouts.forEach((layout, g) => pass.setBindGroup(g, bindGroup(gpu, layout, entriesByGroup[g], `${op}/group${g}`)));
  if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
  pass.end();
  for (const t of temporaries) gpu.pool.release(t);
}

const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 0;
const layoutIds = new WeakMap<GPUBindGroupLayout, number>();
let nextLayoutId = 0;
const bindGroupCaches = new WeakMap<Gpu, Map<string, GPUBindGroup>>();
/** Bind groups kept per device; the oldest go first past this (a graph re-run needs one per dispatch). */
const MAX_CACHED_BIND_GROUPS = 4096;

function idOf<T extends object>(ids: WeakMap<T, number>, obj: T, next: () => number): number {
  let id = ids.get(obj);
  if (id === undefined) ids.set(obj, (id = next()));
  return id;
}

/**
 * The bind group for these exact buffers, offsets and sizes on this layout:
 * a graph run again with new inputs, and the pool's recycled buffers, hit
 * the same keys, so bind groups are made once and reused.
 */
function bindGroup(gpu: Gpu, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[], label: string): GPUBindGroup {
  let cache = bindGroupCaches.get(gpu);
  if (!cache) bindGroupCaches.set(gpu, (cache = new Map()));
  let key = `${idOf(layoutIds, layout, () => nextLayoutId++)}`;
  for (const e of entries) {
    const r = e.resource as GPUBufferBinding;
    key += `|${e.binding}:${idOf(bufferIds, r.buffer, () => nextBufferId++)}:${r.offset ?? 0}:${r.size ?? -1}`;
  }
  let group = cache.get(key);
  if (group) {
    // Refresh its place in the eviction order.
    cache.delete(key);
  } else {
    group = gpu.device.createBindGroup({ layout, entries, label });
    if (cache.size >= MAX_CACHED_BIND_GROUPS) cache.delete(cache.keys().next().value!);
  }
  cache.set(key, group);
  return group;
}

/** How many bind groups this device has cached (for tests of reuse). */
export function cachedBindGroupCount(gpu: Gpu): number {
  return bindGroupCaches.get(gpu)?.size ?? 0;
}

/**
 * A 2-D grid for `n` invocations of `workgroupSize` threads, since one
 * dimension holds at most 65535 workgroups. Shaders recover the linear index
 * as `gid.x + gid.y * nwg.x * WORKGROUP_SIZE` (nwg = num_workgroups) and
 * return when it is >= n.
 */
export function linearGrid(gpu: Gpu, n: number, workgroupSize: number): [number, number] {
  const groups = Math.ceil(n / workgroupSize);
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

const placeholders = new WeakMap<Gpu, Tensor>();

/** A 4-element tensor bound where a shader declares an optional input the caller did not give. */
export function placeholder(gpu: Gpu): Tensor {
  let t = placeholders.get(gpu);
  if (!t || t.disposed) {
    t = Tensor.fromArray(gpu, [0, 0, 0, 0], [4]);
    placeholders.set(gpu, t);
  }
  return t;
}
