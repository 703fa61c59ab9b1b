// The density of a noisy variable y in the plane, p(y) = sum_k exp(log_coef_k - e^T P_k e / 2), e = y - mean_k,
// evaluated per pixel (walkjump 2D Lab; the CPU twin is src/lab/field.rs). One full-screen triangle covers the
// viewport egui sets for the paint callback; each fragment maps its framebuffer pixel to world coordinates through
// the rectangle it was given, so a clipped viewport does not distort the mapping.

struct Component {
    // mean.x, mean.y, log_coef, unused
    mean_coef: vec4<f32>,
    // precision p00, p01, p11, unused
    prec: vec4<f32>,
};

struct Params {
    // framebuffer pixels of the plot rectangle: x0, y0, width, height
    rect_px: vec4<f32>,
    // world window: xmin, xmax, ymin, ymax (y up)
    world: vec4<f32>,
    // colour scale: p_top, contour levels, contour strength (0 = off), log scale decades (0 = linear)
    scale: vec4<f32>,
    // component count, output (0: gamma colour, 1: linear colour, 2: raw, drawn by fs_raw), unused, unused
    misc: vec4<u32>,
    components: array<Component, 256>,
};

@group(0) @binding(0) var<uniform> params: Params;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    // A triangle that covers the whole viewport: (-1,-1), (3,-1), (-1,3).
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    var out: VsOut;
    out.pos = vec4<f32>(x, y, 0.0, 1.0);
    return out;
}

// log p(y). One pass with the terms taken relative to the top of the colour scale (about the largest density, so
// no term overflows); only where that sum underflows (p below about 1e-30 of the top) a second, two-pass
// log-sum-exp about the largest term keeps log p exact in the far tails.
fn quad(c: Component, y: vec2<f32>) -> f32 {
    let e = y - c.mean_coef.xy;
    return c.mean_coef.z - 0.5 * (c.prec.x * e.x * e.x + 2.0 * c.prec.y * e.x * e.y + c.prec.z * e.y * e.y);
}

fn log_density(y: vec2<f32>) -> f32 {
    let n = min(params.misc.x, 256u);
    let r = log(params.scale.x);
    var sum = 0.0;
    for (var k = 0u; k < n; k = k + 1u) {
        sum = sum + exp(quad(params.components[k], y) - r);
    }
    if sum > 1.0e-30 {
        return r + log(sum);
    }
    var top = -3.0e38;
    for (var k = 0u; k < n; k = k + 1u) {
        top = max(top, quad(params.components[k], y));
    }
    var tail = 0.0;
    for (var k = 0u; k < n; k = k + 1u) {
        tail = tail + exp(quad(params.components[k], y) - top);
    }
    return top + log(tail);
}

// The colour map: piecewise linear through five colours of viridis (gamma-encoded sRGB).
fn colormap(t: f32) -> vec3<f32> {
    let s = clamp(t, 0.0, 1.0) * 4.0;
    let c0 = vec3<f32>(0.267, 0.005, 0.329);
    let c1 = vec3<f32>(0.231, 0.322, 0.545);
    let c2 = vec3<f32>(0.129, 0.569, 0.549);
    let c3 = vec3<f32>(0.369, 0.788, 0.384);
    let c4 = vec3<f32>(0.992, 0.906, 0.145);
    if s < 1.0 {
        return mix(c0, c1, s);
    } else if s < 2.0 {
        return mix(c1, c2, s - 1.0);
    } else if s < 3.0 {
        return mix(c2, c3, s - 2.0);
    }
    return mix(c3, c4, min(s - 3.0, 1.0));
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

// The world point of a fragment at framebuffer position `pos` (row 0 at the top, largest y).
fn world_point(pos: vec2<f32>) -> vec2<f32> {
    let uv = (pos - params.rect_px.xy) / params.rect_px.zw;
    let w = params.world;
    return vec2<f32>(mix(w.x, w.y, uv.x), mix(w.w, w.z, uv.y));
}

// Raw output for the tests, as the bits of four f32 (the density, its log, the world point) in an `Rgba32Uint`
// target: integer targets are colour-renderable on every backend (GL included), 32-bit float ones are not.
@fragment
fn fs_raw(in: VsOut) -> @location(0) vec4<u32> {
    let y = world_point(in.pos.xy);
    let lp = log_density(y);
    return bitcast<vec4<u32>>(vec4<f32>(exp(lp), lp, y.x, y.y));
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let y = world_point(in.pos.xy);
    let lp = log_density(y);
    let p = exp(lp);
    let top = params.scale.x;
    let decades = params.scale.w;
    var t = p / top;
    if decades > 0.0 {
        // log scale: the top of the scale at 1, `decades` powers of ten below it at 0
        t = 1.0 + (lp - log(top)) / (decades * log(10.0));
    }
    // Contour lines where t crosses a multiple of 1 / levels, about one pixel wide. fwidth is taken before any
    // branch, in uniform control flow.
    let levels = params.scale.y;
    let c = t * levels;
    let fw = max(fwidth(c), 1.0e-6);
    let dist = abs(fract(c + 0.5) - 0.5);
    let line = (1.0 - smoothstep(0.5 * fw, 1.5 * fw, dist)) * params.scale.z * step(0.5, c) * step(c, levels + 0.5);
    var rgb = mix(colormap(t), vec3<f32>(1.0, 1.0, 1.0), line * 0.7);
    if params.misc.y == 1u {
        rgb = srgb_to_linear(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
