// Copies a view's cached density image (rendered by density.wgsl, possibly at a lower resolution while sigma moves)
// into egui's render pass, with bilinear interpolation done by hand (textureLoad, so any float format works).

struct Blit {
    // framebuffer pixels of the view: x0, y0, width, height
    rect_px: vec4<f32>,
    // cache texture size in texels (xy), unused (zw)
    size: vec4<f32>,
};

@group(0) @binding(0) var<uniform> blit: Blit;
@group(0) @binding(1) var cache: texture_2d<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    var out: VsOut;
    out.pos = vec4<f32>(x, y, 0.0, 1.0);
    return out;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let uv = (in.pos.xy - blit.rect_px.xy) / blit.rect_px.zw;
    // Texel centres sit at integer + 0.5: at equal sizes this lands exactly on one texel (a plain copy).
    let p = uv * blit.size.xy - vec2<f32>(0.5, 0.5);
    let base = floor(p);
    let f = p - base;
    let hi = vec2<i32>(blit.size.xy) - vec2<i32>(1, 1);
    let a = clamp(vec2<i32>(base), vec2<i32>(0, 0), hi);
    let b = clamp(vec2<i32>(base) + vec2<i32>(1, 1), vec2<i32>(0, 0), hi);
    let c00 = textureLoad(cache, vec2<i32>(a.x, a.y), 0);
    let c10 = textureLoad(cache, vec2<i32>(b.x, a.y), 0);
    let c01 = textureLoad(cache, vec2<i32>(a.x, b.y), 0);
    let c11 = textureLoad(cache, vec2<i32>(b.x, b.y), 0);
    return mix(mix(c00, c10, f.x), mix(c01, c11, f.x), f.y);
}
