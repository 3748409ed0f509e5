// Subgroups (issue 19 §2): a kernel that uses subgroup operations must give
// the same numbers for every subgroup size an adapter may report, 4 to 128
// (WebGPU's bounds for subgroupMinSize / subgroupMaxSize), and the tuner's
// checks must catch one that does not.
//
// Today no kernel of the library uses subgroups (every reduction is a tree in
// workgroup memory), so the first test pins that: a shader that starts using
// them must be listed in SUBGROUP_KERNELS and get a test here that runs it at
// every size the local adapters allow (lavapipe reports 8 only: min = max = 8).
// The second test checks the adapter's subgroups themselves and the
// size-agnostic reduction pattern such a kernel should follow.

import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot, gpuSuite } from './util.js';

const test = gpuSuite('subgroups');

/** Shaders (paths from the repository root) allowed to use subgroups, each with a test below at every size. */
const SUBGROUP_KERNELS: string[] = [];

const SUBGROUP_USE = /\benable\s+subgroups\b|\bsubgroup(?:Add|ExclusiveAdd|InclusiveAdd|Mul|ExclusiveMul|InclusiveMul|And|Or|Xor|Min|Max|Ballot|Broadcast|BroadcastFirst|Elect|All|Any|Shuffle\w*)\s*\(|@builtin\s*\(\s*subgroup_(?:size|invocation_id)\s*\)/;

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, ext);
    return ext.test(name) ? [path] : [];
  });
}

test('no kernel uses subgroups without a test here at every subgroup size', () => {
  const sources = [...filesUnder(join(repoRoot, 'shaders'), /\.wgsl$/), ...filesUnder(join(repoRoot, 'src'), /\.ts$/).filter((p) => !p.endsWith('shaders.gen.ts'))];
  assert.ok(sources.length > 20, 'found the shaders and sources');
  const users = sources.filter((p) => SUBGROUP_USE.test(readFileSync(p, 'utf8'))).map((p) => relative(repoRoot, p));
  assert.equal(users, SUBGROUP_KERNELS, `shaders using subgroups: ${users.join(', ') || 'none'}; add each to SUBGROUP_KERNELS with a test at every size the adapter allows`);
});

/**
 * The pattern for a subgroup reduction that is right for any subgroup size
 * and any assignment of invocations to subgroups (WGSL guarantees neither a
 * size nor that subgroups are consecutive invocations, and a workgroup that
 * is not a multiple of the size has a partial subgroup): subgroupAdd, then one
 * elected invocation per subgroup appends its partial to a workgroup array at
 * an atomically claimed slot. A workgroup of WG invocations has at most WG
 * subgroups whatever their size (at most WG / 4 when subgroups are packed, 4
 * being WebGPU's smallest size), so WG slots always suffice; the partials are
 * then summed in a fixed loop. The inputs are small integers, so every order
 * of addition gives the same f32 sum and the result is exact.
 */
const PROBE = /* wgsl */ `
enable subgroups;
override WG: u32 = 64u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> sizes: array<u32>;
var<workgroup> partial: array<f32, WG>;
var<workgroup> count: atomic<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
  let i = wid.x * WG + lid;
  let s = subgroupAdd(x[i]);
  sizes[2u * i] = sg_size;
  sizes[2u * i + 1u] = sg_lane;
  if (subgroupElect()) {
    partial[atomicAdd(&count, 1u)] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var k = 0u; k < atomicLoad(&count); k++) {
      total += partial[k];
    }
    sums[wid.x] = total;
  }
}
`;

async function runProbe(device: GPUDevice, wg: number, groups: number, x: Float32Array<ArrayBuffer>): Promise<{ sums: Float32Array; sizes: Uint32Array }> {
  const module = device.createShaderModule({ code: PROBE });
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main', constants: { WG: wg } } });
  const storage = (bytes: number) => device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const input = storage(x.byteLength);
  device.queue.writeBuffer(input, 0, x);
  const sums = storage(groups * 4);
  const sizes = storage(wg * groups * 8);
  const readSums = device.createBuffer({ size: groups * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const readSizes = device.createBuffer({ size: wg * groups * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [input, sums, sizes].map((buffer, binding) => ({ binding, resource: { buffer } })) }));
  pass.dispatchWorkgroups(groups);
  pass.end();
  encoder.copyBufferToBuffer(sums, 0, readSums, 0, groups * 4);
  encoder.copyBufferToBuffer(sizes, 0, readSizes, 0, wg * groups * 8);
  device.queue.submit([encoder.finish()]);
  await Promise.all([readSums.mapAsync(GPUMapMode.READ), readSizes.mapAsync(GPUMapMode.READ)]);
  const out = { sums: new Float32Array(readSums.getMappedRange().slice(0)), sizes: new Uint32Array(readSizes.getMappedRange().slice(0)) };
  for (const b of [input, sums, sizes, readSums, readSizes]) b.destroy();
  return out;
}

test('the adapter reports subgroup sizes in 4..128, and a size-agnostic subgroup reduction is exact at the size it runs', async ({ gpu }) => {
  const info = gpu.device.adapterInfo;
  // Undefined (an adapter too old to report them) fails the range check below.
  const [min, max] = [Number(info.subgroupMinSize), Number(info.subgroupMaxSize)];
  console.log(`adapter ${info.description || info.device}: subgroupMinSize ${min}, subgroupMaxSize ${max}, feature 'subgroups' ${gpu.features.has('subgroups') ? 'enabled' : 'absent'}`);
  if (!gpu.features.has('subgroups')) return; // nothing runs subgroups on this adapter
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  assert.ok(pow2(min) && pow2(max) && min >= 4 && max <= 128 && min <= max, `subgroup sizes ${min}..${max} within WebGPU's 4..128`);
  // 256 and 64: whole subgroups at any size; 48: a partial subgroup at sizes 32, 64 and 128 (and 48 < 64 invocations for a 64- or 128-wide one).
  for (const wg of [256, 64, 48]) {
    const groups = 5;
    const x = Float32Array.from({ length: wg * groups }, (_, i) => ((i * 7919) % 17) - 8);
    const { sums, sizes } = await runProbe(gpu.device, wg, groups, x);
    const seen = new Set<number>();
    for (let i = 0; i < wg * groups; i++) {
      const [size, lane] = [sizes[2 * i], sizes[2 * i + 1]];
      seen.add(size);
      assert.ok(size >= min && size <= max && pow2(size), `workgroup ${wg}: invocation ${i} ran in a subgroup of ${size}, outside ${min}..${max}`);
      assert.ok(lane < size, `workgroup ${wg}: lane ${lane} of a subgroup of ${size}`);
    }
    for (let g = 0; g < groups; g++) {
      const want = x.subarray(g * wg, (g + 1) * wg).reduce((s, v) => s + v, 0);
      assert.is(sums[g], want, `workgroup size ${wg}, workgroup ${g}, subgroup sizes ${[...seen].join('/')}`);
    }
    console.log(`workgroup ${wg}: subgroup size(s) ${[...seen].join(', ')}; sums exact`);
  }
});

test.run();
