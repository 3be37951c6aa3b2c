// RUN: fusion dce memory
// With a dimension unknown (`?`, before the Session specialises the fed shapes) every value
// still gets its kind, but no offset, and the arena's size is unknown; values whose shapes
// are known have their sizes. A cond result has a buffer of its own, into which each
// branch's yield copies.
func @main(%p: tensor<i1>, %x: tensor<?x3xf32>, %y: tensor<4xf32>) {
  %a = exp %x : (tensor<?x3xf32>) -> tensor<?x3xf32>
  %b = reduce_sum %a {axes = [0, 1], keepdims = false} : (tensor<?x3xf32>) -> tensor<f32>
  %r = cond %p : (tensor<i1>) -> tensor<4xf32> {
    %t = tanh %y : (tensor<4xf32>) -> tensor<4xf32>
    yield %t : (tensor<4xf32>)
  } else {
    yield %y : (tensor<4xf32>)
  }
  %s = mul %r, %b : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return %s : (tensor<4xf32>)
}
// CHECK:      [[A:%[0-9]+]] = fused %arg1
// CHECK:      [[B:%[0-9]+]] = fused [[A]]
// CHECK:      [[R:%[0-9]+]] = cond %arg0
// CHECK-NEXT:   [[T:%[0-9]+]] = fused %arg2
// CHECK:      [[S:%[0-9]+]] = fused [[R]], [[B]]
// CHECK:      // memory: [[A]] arena bytes=None
// CHECK-NEXT: // memory: [[B]] arena bytes=4
// CHECK-NEXT: // memory: [[R]] arena bytes=16
// CHECK-NEXT: // memory: [[T]] arena bytes=16
// CHECK-NEXT: // memory: [[S]] output bytes=16
// CHECK-NEXT: // memory: arena size unknown until shapes are known
