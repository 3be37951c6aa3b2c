// RUN: gemm
// Left alone: a product that is read again (the gemm would compute it twice), a scale
// that is not a constant, an add that broadcasts, integers, and c - s * p read the wrong
// way round (s * p - c is not an accumulation into c). A scale of shape [1] is read
// without trouble (the fuzzer found it crashing the pass).
func @main(%a: tensor<4x4xf32>, %c: tensor<4x4xf32>, %v: tensor<4xf32>, %s: tensor<f32>, %i: tensor<4x4xi32>) {
  %p = matmul %a, %a : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %kept = add %c, %p : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %q = matmul %a, %a : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %qs = mul %q, %s : (tensor<4x4xf32>, tensor<f32>) -> tensor<4x4xf32>
  %scaled = add %c, %qs : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %r = matmul %a, %a : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %bias = add %r, %v : (tensor<4x4xf32>, tensor<4xf32>) -> tensor<4x4xf32>
  %n = matmul %i, %i : (tensor<4x4xi32>, tensor<4x4xi32>) -> tensor<4x4xi32>
  %ints = add %i, %n : (tensor<4x4xi32>, tensor<4x4xi32>) -> tensor<4x4xi32>
  %t = matmul %a, %a : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %back = sub %t, %c : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %one = constant {value = dense<[0.5]> : tensor<1xf32>} : () -> tensor<1xf32>
  %half = mul %c, %one : (tensor<4x4xf32>, tensor<1xf32>) -> tensor<4x4xf32>
  %plain = add %c, %half : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return %kept, %p, %scaled, %bias, %ints, %back, %plain : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi32>, tensor<4x4xf32>, tensor<4x4xf32>)
}
// CHECK-NOT: gemm
// CHECK:     return
