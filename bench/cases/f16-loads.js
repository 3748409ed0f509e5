// Micro-benchmark for issue 19 §1: does storing the weight operand of a
// matmul in half precision cut its time on this adapter, and how must the
// halves be loaded? On lavapipe (llvmpipe) every storage read whose index
// differs between invocations runs as a scalar loop over the SIMD lanes, so
// what should count is the NUMBER of such reads, not their bytes.
//
// One stripped-down copy of the `direct` matmul (shaders/matmul.wgsl) per way
// of loading B, everything else identical: y = A · Bᵀ, A [M, K] f32, B stored
// [N, K] (a linear layer's weight, as CLIP's towers hold them), f32
// accumulation. Workgroup 8 × 1; each invocation owns 8 rows × 16 columns
// (columns (j·8 + tx)·4 + c, j, c < 4: the interleave of direct-wg8x1-r8x16),
// so A's reads are the same for the whole workgroup (uniform) and B's differ
// per invocation: B's reads are the ones llvmpipe loops over.
//
//   f32 vec4        B as array<vec4<f32>>: 4 k per read (today's matmul)
//   f16 vec2<u32>   B as f16 pairs in u32s, 4 halves (4 k) per read, unpack2x16float
//   f16 vec4<u32>   8 halves (8 k) per read: half as many B reads per k
//   f16 vec4<f16>   `enable f16`, array<vec4<f16>>: 4 k per read (shader-f16 only)
//
// The f16 lines' ratio is f32 time / f16 time (> 1: the f16 load is faster).
// A last line per shape times the library's f32 matmul (transB) against the
// f32 vec4 kernel here: how representative the stripped-down kernel is.
// Shapes: CLIP ViT-B/16 image tower at batch 1 (197 tokens: q/k/v/out, MLP
// fc and proj) and MobileSAM's TinyViT MLPs at 1024² input (stage 2: 128×128
// tokens of 128 channels; stage 4: 64×64 tokens of 320).
// --quick: one CLIP and one TinyViT shape.
import { Tensor, matmul } from '../../dist/node.js';
import { maxAbsDiff, values } from '../values.js';

const SHAPES = [
  [197, 768, 768],
  [197, 768, 3072],
  [197, 3072, 768],
  [16384, 128, 512],
  [4096, 320, 1280],
  [4096, 1280, 320],
];
const QUICK_SHAPES = [
  [197, 768, 3072],
  [4096, 320, 1280],
];

/**
 * The ways of loading B: the WGSL element type of its storage array, how many
 * k one step covers (KSTEP, a multiple of 4), and a body for
 * `fn load_b(col, k) -> array<vec4<f32>, KSTEP / 4>` (B[col][k .. k+KSTEP-1]).
 */
const LOADS = {
  'f32 vec4': { element: 'vec4<f32>', kstep: 4, body: 'return array<vec4<f32>, 1>(bw[(col * params.K + k) / 4u]);' },
  'f16 vec2<u32>': {
    element: 'vec2<u32>',
    kstep: 4,
    body: 'let p = bw[(col * params.K + k) / 4u];\n  return array<vec4<f32>, 1>(vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)));',
  },
  'f16 vec4<u32>': {
    element: 'vec4<u32>',
    kstep: 8,
    body:
      'let p = bw[(col * params.K + k) / 8u];\n' +
      '  return array<vec4<f32>, 2>(vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)), vec4<f32>(unpack2x16float(p.z), unpack2x16float(p.w)));',
  },
  'f16 vec4<f16>': { element: 'vec4<f16>', kstep: 4, enableF16: true, body: 'return array<vec4<f32>, 1>(vec4<f32>(bw[(col * params.K + k) / 4u]));' },
};

function kernelSource({ element, kstep, body, enableF16 = false }) {
  const steps = kstep / 4;
  return `${enableF16 ? 'enable f16;\n' : ''}
struct Params { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> bw: array<${element}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const KSTEP = ${kstep}u;
const STEPS = ${steps}u;

fn load_b(col: u32, k: u32) -> array<vec4<f32>, STEPS> {
  ${body}
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * 8u;
  let col0 = wid.x * 128u + lid.x * 4u;
  // acc[r][j][c]: row row0 + r, column col0 + j·32 + c.
  var acc: array<array<vec4<f32>, 4>, 8>;
  for (var k = 0u; k < params.K; k += KSTEP) {
    // bv[j·4 + c][s] = B[column col0 + j·32 + c][k + 4s .. k + 4s + 3], columns clamped.
    var bv: array<array<vec4<f32>, STEPS>, 16>;
    for (var n = 0u; n < 16u; n++) {
      bv[n] = load_b(min(col0 + (n / 4u) * 32u + n % 4u, params.N - 1u), k);
    }
    for (var s = 0u; s < STEPS; s++) {
      // As the direct kernel does: B's 4 k × 4 columns of group j turned into bt[kk][j] (columns along the vec4).
      var bt: array<array<vec4<f32>, 4>, 4>;
      for (var j = 0u; j < 4u; j++) {
        let n0 = bv[j * 4u][s];
        let n1 = bv[j * 4u + 1u][s];
        let n2 = bv[j * 4u + 2u][s];
        let n3 = bv[j * 4u + 3u][s];
        bt[0][j] = vec4<f32>(n0.x, n1.x, n2.x, n3.x);
        bt[1][j] = vec4<f32>(n0.y, n1.y, n2.y, n3.y);
        bt[2][j] = vec4<f32>(n0.z, n1.z, n2.z, n3.z);
        bt[3][j] = vec4<f32>(n0.w, n1.w, n2.w, n3.w);
      }
      for (var r = 0u; r < 8u; r++) {
        let av = a4[(min(row0 + r, params.M - 1u) * params.K + k) / 4u + s];
        for (var j = 0u; j < 4u; j++) {
          acc[r][j] += av.x * bt[0][j] + av.y * bt[1][j] + av.z * bt[2][j] + av.w * bt[3][j];
        }
      }
    }
  }
  for (var r = 0u; r < 8u; r++) {
    for (var j = 0u; j < 4u; j++) {
      for (var c = 0u; c < 4u; c++) {
        let row = row0 + r;
        let col = col0 + j * 32u + c;
        if (row < params.M && col < params.N) {
          y[row * params.N + col] = acc[r][j][c];
        }
      }
    }
  }
}
`;
}

/** Half-precision bits of a value that is exactly representable in f16 (checked). */
function halfBits(v) {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (v === 0) return 0;
  if (exp <= 0 || exp >= 31 || (mant & 0x1fff) !== 0) throw new Error(`bench f16-loads: ${v} is not a normal f16`);
  return ((u >>> 16) & 0x8000) | (exp << 10) | (mant >>> 13);
}

export default async function (ctx) {
  const { gpu, device } = ctx;
  const loads = Object.entries(LOADS).filter(([, l]) => !l.enableF16 || gpu.hasF16);
  if (!gpu.hasF16) ctx.note('the adapter lacks shader-f16: no vec4<f16> line');
  const pipelines = new Map(
    loads.map(([name, load]) => [
      name,
      device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: kernelSource(load) }), entryPoint: 'main' } }),
    ]),
  );
  const storage = (bytes) => device.createBuffer({ size: Math.ceil(bytes / 16) * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });

  for (const [M, K, N] of ctx.quick ? QUICK_SHAPES : SHAPES) {
    const label = `${M}x${K}x${N}`;
    if (!loads.some(([name]) => ctx.wants(`f16-loads ${label} ${name}`))) continue;
    // Inputs exactly representable in f16 (multiples of 1/64 in [-0.5, 0.5)), so every load gives the same B.
    const aData = values(M * K, 1);
    const bData = values(N * K, 2).map((v) => Math.round(v * 64) / 64);
    const a = storage(aData.byteLength);
    const bF32 = storage(bData.byteLength);
    const bF16 = storage(bData.length * 2);
    const y = storage(M * N * 4);
    const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(a, 0, aData);
    device.queue.writeBuffer(bF32, 0, bData);
    device.queue.writeBuffer(bF16, 0, Uint16Array.from(bData, halfBits));
    device.queue.writeBuffer(params, 0, new Uint32Array([M, N, K, 0]));
    const readback = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });

    const record = (name) => {
      const pipeline = pipelines.get(name);
      const bind = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [a, name === 'f32 vec4' ? bF32 : bF16, y, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      const pass = gpu.commandEncoder().beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(Math.ceil(N / 128), Math.ceil(M / 8));
      pass.end();
    };
    const run = async (name) => {
      record(name);
      gpu.commandEncoder().copyBufferToBuffer(y, 0, readback, 0, M * N * 4);
      gpu.flush();
      await readback.mapAsync(GPUMapMode.READ);
      const out = new Float32Array(readback.getMappedRange().slice(0));
      readback.unmap();
      return out;
    };

    // Every load must compute the same product before its time means anything.
    const want = await run('f32 vec4');
    for (const [name] of loads.slice(1)) {
      const diff = maxAbsDiff(await run(name), want);
      if (!(diff < 1e-4)) throw new Error(`bench f16-loads: ${name} differs from f32 vec4 by ${diff} at ${label}`);
    }
    for (const [name] of loads.slice(1)) {
      await ctx.bench({
        name: `f16-loads ${label} ${name}`,
        shape: `[${M},${K}]x[${N},${K}]ᵀ, B ${name}`,
        flops: 2 * M * K * N,
        ours: () => record(name),
        peers: { 'f32 vec4': () => record('f32 vec4') },
      });
    }
    // How far this stripped-down kernel is from the library's tuned f32 matmul on the same product.
    const ta = Tensor.fromArray(gpu, aData, [M, K]);
    const tb = Tensor.fromArray(gpu, bData, [N, K]);
    const ty = Tensor.empty(gpu, [M, N]);
    await ctx.bench({
      name: `f16-loads ${label} library matmul`,
      shape: `[${M},${K}]x[${N},${K}]ᵀ f32, src/kernels/matmul.ts (transB)`,
      flops: 2 * M * K * N,
      ours: () => {
        matmul(gpu, ta, tb, { transB: true, out: ty });
      },
      peers: { 'f32 vec4': () => record('f32 vec4') },
    });
    for (const t of [ta, tb, ty]) t.dispose();
    for (const b of [a, bF32, bF16, y, params, readback]) b.destroy();
  }
}
