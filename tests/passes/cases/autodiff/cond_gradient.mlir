// RUN: autodiff
// The gradient of a cond is a cond on the same predicate: each branch recomputes its
// forward branch and differentiates it with respect to the values the branch captures.
// %w is captured by one branch only: the other yields a zero for it. The predicate is
// boolean and gets no gradient. The sum's 0-d cotangent broadcasts to %r as it is (no
// expand_dims first).
func.func @main(%p: tensor<i1>, %x: tensor<3xf64>, %w: tensor<f64>) -> tensor<f64> {
  %r = "gj.cond"(%p) ({
    %m = "gj.mul"(%x, %w) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
    %e = "gj.exp"(%m) : (tensor<3xf64>) -> tensor<3xf64>
    "gj.yield"(%e) : (tensor<3xf64>) -> ()
  }, {
    %t = "gj.tanh"(%x) : (tensor<3xf64>) -> tensor<3xf64>
    "gj.yield"(%t) : (tensor<3xf64>) -> ()
  }) : (tensor<i1>) -> tensor<3xf64>
  %s = "gj.reduce_sum"(%r) {axes = [0], keepdims = false} : (tensor<3xf64>) -> tensor<f64>
  func.return %s : tensor<f64>
}
// CHECK:      [[R:%[0-9]+]] = "gj.cond"(%arg0) ({
// CHECK:      [[S:%[0-9]+]] = "gj.reduce_sum"([[R]]
// CHECK-NOT:  "gj.expand_dims"
// CHECK:      [[DR:%[0-9]+]] = "gj.broadcast_like"(%{{[0-9]+}}, [[R]]) : (tensor<f64>, tensor<3xf64>)
// CHECK-NEXT: [[G:%[0-9]+]]:2 = "gj.cond"(%arg0) ({
// CHECK-NEXT:   [[M:%[0-9]+]] = "gj.mul"(%arg1, %arg2
// CHECK-NEXT:   [[E:%[0-9]+]] = "gj.exp"([[M]]
// CHECK-NEXT:   [[DM:%[0-9]+]] = "gj.mul"([[DR]], [[E]]
// CHECK-NEXT:   [[DX:%[0-9]+]] = "gj.mul"([[DM]], %arg2
// CHECK-NEXT:   [[DWX:%[0-9]+]] = "gj.mul"([[DM]], %arg1
// CHECK-NEXT:   [[DW:%[0-9]+]] = "gj.sum_to"([[DWX]], %arg2) : (tensor<3xf64>, tensor<f64>)
// CHECK-NEXT:   "gj.yield"([[DX]], [[DW]]) : (tensor<3xf64>, tensor<f64>) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT:   [[T:%[0-9]+]] = "gj.tanh"(%arg1
// CHECK-NEXT:   [[DX2:%[0-9]+]] = "gj.tanh_grad"([[DR]], [[T]]
// CHECK-NOT:    %arg1
// CHECK:        [[ZERO:%[0-9]+]] = "gj.broadcast_like"(%{{[0-9]+}}, %arg2
// CHECK-NEXT:   "gj.yield"([[DX2]], [[ZERO]]) : (tensor<3xf64>, tensor<f64>) -> ()
// CHECK-NEXT: }) : (tensor<i1>) -> (tensor<3xf64>, tensor<f64>)
// CHECK-NEXT: func.return [[S]], [[G]]#0, [[G]]#1 : tensor<f64>, tensor<3xf64>, tensor<f64>
