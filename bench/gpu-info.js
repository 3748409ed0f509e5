#!/usr/bin/env node
// The adapter part of the real-GPU check (bench/gpu.sh): what Dawn found —
// vendor, architecture, device, driver description, fallback or not — the
// adapter's features (shader-f16, subgroups, timestamp-query and the rest),
// its subgroup size range and the size a compute shader actually runs at, the
// limits the kernels care about, and what getDevice() made of it.
//
//   node bench/gpu-info.js [--json FILE]
//
// Exits 1 when no adapter is found (the rest of the check cannot run).

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getDevice } from '../dist/node.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const jsonPath = args[0] === '--json' ? args[1] : undefined;
if (args.length > 0 && !jsonPath) {
  console.error('usage: node bench/gpu-info.js [--json FILE]');
  process.exit(2);
}

const LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
];

/** The subgroup size(s) one 256-invocation workgroup of a compute shader runs at. */
async function observedSubgroupSizes(device) {
  const module = device.createShaderModule({
    code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> sizes: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) i: u32, @builtin(subgroup_size) n: u32) { sizes[i] = n; }`,
  });
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const buffer = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 1024, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer } }] }));
  pass.dispatchWorkgroups(1);
  pass.end();
  encoder.copyBufferToBuffer(buffer, 0, read, 0, 1024);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const sizes = [...new Set(new Uint32Array(read.getMappedRange()))];
  read.unmap();
  buffer.destroy();
  read.destroy();
  return sizes;
}

let gpu;
try {
  gpu = await getDevice();
} catch (e) {
  console.error(`gpu-info: no WebGPU device: ${e.message}`);
  process.exit(1);
}
try {
  const adapter = await gpu.instance.requestAdapter();
  const info = {};
  for (const key of ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter']) info[key] = adapter.info[key];
  const features = [...adapter.features].sort();
  const report = {
    node: process.version,
    webgpu_package: JSON.parse(readFileSync(join(here, '..', 'node_modules', 'webgpu', 'package.json'), 'utf8')).version,
    adapter: info,
    summary: gpu.adapter,
    adapter_features: features,
    device_features: [...gpu.features].sort(),
    limits: Object.fromEntries(LIMITS.map((k) => [k, gpu.limits[k]])),
    subgroup_sizes_observed: gpu.features.has('subgroups') ? await observedSubgroupSizes(gpu.device) : [],
    env: { MEDFOCUS_GPU_VARIANTS: process.env.MEDFOCUS_GPU_VARIANTS ?? null, VK_DRIVER_FILES: process.env.VK_DRIVER_FILES ?? null },
  };
  console.log(`adapter: ${info.description || info.device} (vendor ${info.vendor}, architecture ${info.architecture || '-'}, device ${info.device || '-'}${info.isFallbackAdapter ? ', fallback' : ''})`);
  console.log(`library: name ${gpu.adapter.name}, isCpu ${gpu.adapter.isCpu} (CPU-style kernel variants until tuned: ${gpu.adapter.isCpu ? 'yes' : 'no'})`);
  console.log(`node ${report.node}, npm webgpu ${report.webgpu_package} (Dawn)`);
  const has = (f) => (features.includes(f) ? 'yes' : 'no');
  console.log(`shader-f16: ${has('shader-f16')}; subgroups: ${has('subgroups')} (sizes ${info.subgroupMinSize}..${info.subgroupMaxSize}, a 256-invocation workgroup ran at ${report.subgroup_sizes_observed.join('/') || '-'}); timestamp-query: ${has('timestamp-query')}`);
  console.log(`device features requested by getDevice: ${report.device_features.join(', ') || 'none'}`);
  console.log(`adapter features: ${features.join(', ')}`);
  console.log(`limits: ${LIMITS.map((k) => `${k} ${gpu.limits[k]}`).join(', ')}`);
  if (jsonPath) {
    writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${jsonPath}`);
  }
} finally {
  gpu.destroy();
}
