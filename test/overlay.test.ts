import * as assert from 'uvu/assert';
import { decodeImage, encodePng, type DecodedImage } from '../src/io/image.js';
import { COLORMAPS, MASK_PALETTE, renderHeatmap, renderOverlay, sideBySide } from '../src/render/overlay.js';
import { assertThrows, rng, suite } from './util.js';

const test = suite('overlay');

function randomImage(width: number, height: number, seed: number): DecodedImage {
  const r = rng(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 4 }, (_, i) => (i % 4 === 3 ? 255 : Math.floor(r() * 256))), channels: 3 };
}

function pixel(image: DecodedImage, x: number, y: number): number[] {
  const at = 4 * (y * image.width + x);
  return [...image.data.subarray(at, at + 4)];
}

/** The blend written out per channel: round((1 − α)·base + α·colour), alpha untouched. */
function blended(base: number[], color: readonly number[], alpha: number): number[] {
  return [0, 1, 2].map((c) => Math.round(base[c] * (1 - alpha) + color[c] * alpha)).concat(base[3]);
}

test('overlay: inside a mask the alpha blend, outside the image unchanged; later masks over earlier ones', () => {
  const image = randomImage(9, 7, 1);
  const original = image.data.slice();
  const a = new Uint8Array(63);
  const b = new Uint8Array(63);
  for (let y = 1; y < 5; y++) for (let x = 1; x < 6; x++) a[y * 9 + x] = 1;
  for (let y = 3; y < 7; y++) for (let x = 4; x < 9; x++) b[y * 9 + x] = 255; // any non-zero byte is inside
  const alpha = 0.3;
  const out = renderOverlay(image, [{ mask: a, color: [200, 10, 50] }, { mask: b, color: [0, 255, 128] }], { alpha });
  assert.equal(image.data, original, 'the input is not modified');
  for (let y = 0; y < 7; y++) {
    for (let x = 0; x < 9; x++) {
      let expected = pixel(image, x, y);
      if (a[y * 9 + x]) expected = blended(expected, [200, 10, 50], alpha);
      if (b[y * 9 + x]) expected = blended(expected, [0, 255, 128], alpha);
      assert.equal(pixel(out, x, y), expected, `pixel (${x}, ${y})`);
    }
  }
  assert.equal([out.width, out.height], [9, 7]);
});

test('overlay: alpha 0 leaves the image, alpha 1 paints the pure colour; default alpha is 0.5', () => {
  const image = randomImage(4, 3, 2);
  const mask = Uint8Array.from([1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
  assert.equal(renderOverlay(image, [{ mask, color: [1, 2, 3] }], { alpha: 0 }).data, image.data);
  const full = renderOverlay(image, [{ mask, color: [1, 2, 3] }], { alpha: 1 });
  const half = renderOverlay(image, [{ mask, color: [1, 2, 3] }]);
  mask.forEach((m, i) => {
    const [x, y] = [i % 4, Math.floor(i / 4)];
    assert.equal(pixel(full, x, y), m ? [1, 2, 3, 255] : pixel(image, x, y), `alpha 1, pixel ${i}`);
    assert.equal(pixel(half, x, y), m ? blended(pixel(image, x, y), [1, 2, 3], 0.5) : pixel(image, x, y), `alpha 0.5, pixel ${i}`);
  });
});

test('overlay colours: the palette in order without a seed; a seed gives repeatable, distinct random colours', () => {
  const image: DecodedImage = { width: 3, height: 1, data: new Uint8Array(12).fill(255), channels: 3 };
  const masks = [0, 1, 2].map((k) => ({ mask: Uint8Array.from([0, 1, 2].map((i) => (i === k ? 1 : 0))) }));
  const painted = renderOverlay(image, masks, { alpha: 1 });
  [0, 1, 2].forEach((k) => assert.equal(pixel(painted, k, 0), [...MASK_PALETTE[k], 255], `palette colour ${k}`));
  const seeded = renderOverlay(image, masks, { alpha: 1, seed: 7 });
  assert.equal(renderOverlay(image, masks, { alpha: 1, seed: 7 }).data, seeded.data, 'same seed, same colours');
  assert.not.equal(renderOverlay(image, masks, { alpha: 1, seed: 8 }).data, seeded.data, 'another seed, other colours');
  assert.not.equal(pixel(seeded, 0, 0), pixel(seeded, 1, 0), 'masks get different colours');
  assert.ok(new Set(MASK_PALETTE.map((c) => c.join())).size === MASK_PALETTE.length, 'palette colours are distinct');
});

test('overlay outline: contour pixels opaque, interior blended, outside untouched', () => {
  const image = randomImage(9, 9, 3);
  const mask = new Uint8Array(81);
  for (let y = 2; y < 7; y++) for (let x = 2; x < 7; x++) mask[y * 9 + x] = 1;
  mask[0] = 1; // a lone pixel at the image corner is all contour
  const color = [10, 220, 30] as const;
  const out = renderOverlay(image, [{ mask, color }], { alpha: 0.4, outline: true });
  for (let y = 0; y < 9; y++) {
    for (let x = 0; x < 9; x++) {
      const inside = mask[y * 9 + x] === 1;
      const contour = inside && (x === 0 || x === 2 || x === 6 || y === 2 || y === 6);
      const expected = !inside ? pixel(image, x, y) : contour ? [...color, 255] : blended(pixel(image, x, y), color, 0.4);
      assert.equal(pixel(out, x, y), expected, `pixel (${x}, ${y})`);
    }
  }
});

test('heat map: jet endpoints and midpoint, bilinear stretch, min/max clamping', () => {
  assert.equal(COLORMAPS.jet(0), [0, 0, 128], 'jet(0) dark blue');
  assert.equal(COLORMAPS.jet(0.5), [128, 255, 128], 'jet(0.5)');
  assert.equal(COLORMAPS.jet(1), [128, 0, 0], 'jet(1) dark red');
  // Turbo's polynomial at its ends: the constant terms, and the sums of the coefficients.
  assert.equal(COLORMAPS.turbo(0), [35, 23, 27], 'turbo(0)');
  assert.equal(COLORMAPS.turbo(1), [144, 13, 0], 'turbo(1)');
  const mid = COLORMAPS.turbo(0.5);
  assert.ok(mid[1] > mid[0] && mid[1] > mid[2], `turbo(0.5) is green-dominant: ${mid}`);

  const image = randomImage(4, 2, 4);
  // A 2×1 ramp stretched to 4 columns (align_corners = False): t = 0, ¼, ¾, 1 in every row.
  const out = renderHeatmap(image, Float32Array.from([3, 5]), 2, 1, { alpha: 1 });
  const ts = [0, 0.25, 0.75, 1];
  for (let y = 0; y < 2; y++) ts.forEach((t, x) => assert.equal(pixel(out, x, y), [...COLORMAPS.jet(t), 255], `pixel (${x}, ${y}), t = ${t}`));
  assert.equal(COLORMAPS.jet(0.25), [0, 128, 255]);
  // Blend at alpha 0.25 with an explicit range: values outside it clamp to the ends.
  const clamped = renderHeatmap(image, Float32Array.from([-10, 10]), 2, 1, { alpha: 0.25, min: 0, max: 1, colormap: 'turbo' });
  assert.equal(pixel(clamped, 0, 1), blended(pixel(image, 0, 1), COLORMAPS.turbo(0), 0.25), 'below min → turbo(0)');
  assert.equal(pixel(clamped, 3, 0), blended(pixel(image, 3, 0), COLORMAPS.turbo(1), 0.25), 'above max → turbo(1)');
  // A constant map has no range: everything maps to the start.
  const flat = renderHeatmap(image, Float32Array.from([2, 2, 2, 2]), 2, 2, { alpha: 1 });
  for (let i = 0; i < 8; i++) assert.equal(pixel(flat, i % 4, Math.floor(i / 4)), [0, 0, 128, 255]);
});

test('side by side: widths add with gaps, height is the tallest, the rest is background', () => {
  const a = randomImage(3, 2, 5);
  const b = randomImage(2, 4, 6);
  const out = sideBySide([a, b], 1, [9, 8, 7]);
  assert.equal([out.width, out.height], [6, 4]);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 6; x++) {
      let expected = [9, 8, 7, 255];
      if (x < 3 && y < 2) expected = pixel(a, x, y);
      if (x >= 4) expected = pixel(b, x - 4, y);
      assert.equal(pixel(out, x, y), expected, `pixel (${x}, ${y})`);
    }
  }
  const single = sideBySide([a]);
  assert.equal(single.data, a.data, 'one image comes back as is');
  const tight = sideBySide([a, a, a], 0);
  assert.equal([tight.width, tight.height], [9, 2]);
  // The result is an ordinary RGBA8 image: it survives a PNG round trip.
  const png = decodeImage(encodePng(out.data, out.width, out.height));
  assert.equal(png.data, out.data);
});

test('bad arguments throw Errors naming the function and the value', async () => {
  const image = randomImage(3, 2, 7);
  await assertThrows(() => renderOverlay(image, [{ mask: new Uint8Array(5) }]), /renderOverlay/, /masks\[0\]/, /6 bytes, got 5/);
  await assertThrows(() => renderOverlay(image, [], { alpha: 1.5 }), /renderOverlay/, /alpha/, /1\.5/);
  await assertThrows(() => renderOverlay(image, [{ mask: new Uint8Array(6), color: [0, 300, 0] }]), /renderOverlay/, /color/, /300/);
  await assertThrows(() => renderOverlay({ ...image, data: new Uint8Array(3) }, []), /renderOverlay/, /24 RGBA8 bytes, got 3/);
  await assertThrows(() => renderHeatmap(image, new Float32Array(3), 2, 2), /renderHeatmap/, /2·2 = 4, got 3/);
  await assertThrows(() => renderHeatmap(image, Float32Array.from([0, NaN]), 2, 1), /renderHeatmap/, /finite/, /NaN/);
  await assertThrows(() => renderHeatmap(image, new Float32Array(1), 1, 1, { min: 2, max: 1 }), /renderHeatmap/, /min 2 and max 1/);
  await assertThrows(() => renderHeatmap(image, new Float32Array(1), 1, 1, { colormap: 'viridis' as 'jet' }), /renderHeatmap/, /'viridis'/);
  await assertThrows(() => sideBySide([]), /sideBySide/, /at least one image/);
  await assertThrows(() => sideBySide([image], -1), /sideBySide/, /gap/, /-1/);
});

test.run();
