// RUN: autodiff
// The gradient of a cond is a cond on the same predicate: each branch recomputes its
// forward branch and differentiates it with respect to the values the branch captures.
// %w is captured by one branch only: the other yields a zero for it. The predicate is
// boolean and gets no gradient.
func @main(%p: tensor<i1>, %x: tensor<3xf64>, %w: tensor<f64>) {
  %r = cond %p : (tensor<i1>) -> tensor<3xf64> {
    %m = mul %x, %w : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
    %e = exp %m : (tensor<3xf64>) -> tensor<3xf64>
    yield %e : (tensor<3xf64>)
  } else {
    %t = tanh %x : (tensor<3xf64>) -> tensor<3xf64>
    yield %t : (tensor<3xf64>)
  }
  %s = reduce_sum %r {axes = [0], keepdims = false} : (tensor<3xf64>) -> tensor<f64>
  return %s : (tensor<f64>)
}
// CHECK:      [[R:%[0-9]+]] = cond %arg0 : (tensor<i1>) -> tensor<3xf64> {
// CHECK:      [[S:%[0-9]+]] = reduce_sum [[R]]
// CHECK:      [[DR:%[0-9]+]] = broadcast_like %{{[0-9]+}}, [[R]] : (tensor<1xf64>, tensor<3xf64>)
// CHECK-NEXT: [[G:%[0-9]+]]:2 = cond %arg0 : (tensor<i1>) -> (tensor<3xf64>, tensor<f64>) {
// CHECK-NEXT:   [[M:%[0-9]+]] = mul %arg1, %arg2
// CHECK-NEXT:   [[E:%[0-9]+]] = exp [[M]]
// CHECK-NEXT:   [[DM:%[0-9]+]] = mul [[DR]], [[E]]
// CHECK-NEXT:   [[DX:%[0-9]+]] = mul [[DM]], %arg2
// CHECK-NEXT:   [[DWX:%[0-9]+]] = mul [[DM]], %arg1
// CHECK-NEXT:   [[DW:%[0-9]+]] = sum_to [[DWX]], %arg2 : (tensor<3xf64>, tensor<f64>)
// CHECK-NEXT:   yield [[DX]], [[DW]] : (tensor<3xf64>, tensor<f64>)
// CHECK-NEXT: } else {
// CHECK-NEXT:   [[T:%[0-9]+]] = tanh %arg1
// CHECK-NEXT:   [[TT:%[0-9]+]] = mul [[T]], [[T]]
// CHECK:        [[DT:%[0-9]+]] = sub %{{[0-9]+}}, [[TT]]
// CHECK-NEXT:   [[DX2:%[0-9]+]] = mul [[DR]], [[DT]]
// CHECK-NOT:    %arg1
// CHECK:        [[ZERO:%[0-9]+]] = broadcast_like %{{[0-9]+}}, %arg2
// CHECK-NEXT:   yield [[DX2]], [[ZERO]] : (tensor<3xf64>, tensor<f64>)
// CHECK-NEXT: }
// CHECK-NEXT: return [[S]], [[G]]#0, [[G]]#1 : (tensor<f64>, tensor<3xf64>, tensor<f64>)
