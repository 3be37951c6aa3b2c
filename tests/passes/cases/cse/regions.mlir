// RUN: cse
// An op in a region reuses an equal op from above the region. Sibling regions (a cond's
// branches, a while's before and do regions) share nothing, and what a region computes
// is not reused after it.
func @main(%p: tensor<i1>, %x: tensor<f64>) {
  %outer = exp %x : (tensor<f64>) -> tensor<f64>
  %r = cond %p : (tensor<i1>) -> tensor<f64> {
    %e = exp %x : (tensor<f64>) -> tensor<f64>
    %t1 = tanh %x : (tensor<f64>) -> tensor<f64>
    %t2 = tanh %x : (tensor<f64>) -> tensor<f64>
    %y = add %e, %t2 : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %y1 = add %y, %t1 : (tensor<f64>, tensor<f64>) -> tensor<f64>
    yield %y1 : (tensor<f64>)
  } else {
    %t3 = tanh %x : (tensor<f64>) -> tensor<f64>
    yield %t3 : (tensor<f64>)
  }
  %after = tanh %x : (tensor<f64>) -> tensor<f64>
  %w = while %r : (tensor<f64>) -> tensor<f64> {
  ^bb0(%a: tensor<f64>):
    %n1 = neg %x : (tensor<f64>) -> tensor<f64>
    %go = less %a, %n1 : (tensor<f64>, tensor<f64>) -> tensor<i1>
    condition %go : (tensor<i1>)
  } do {
  ^bb0(%b: tensor<f64>):
    %n2 = neg %x : (tensor<f64>) -> tensor<f64>
    %next = add %b, %n2 : (tensor<f64>, tensor<f64>) -> tensor<f64>
    yield %next : (tensor<f64>)
  }
  return %outer, %after, %w : (tensor<f64>, tensor<f64>, tensor<f64>)
}
// CHECK:      [[OUTER:%[0-9]+]] = exp %arg1
// CHECK-NEXT: cond %arg0
// CHECK-NEXT:   [[T1:%[0-9]+]] = tanh %arg1
// CHECK-NEXT:   [[Y:%[0-9]+]] = add [[OUTER]], [[T1]]
// CHECK-NEXT:   [[Y1:%[0-9]+]] = add [[Y]], [[T1]]
// CHECK-NEXT:   yield [[Y1]]
// CHECK-NEXT: } else {
// CHECK-NEXT:   [[T3:%[0-9]+]] = tanh %arg1
// CHECK-NEXT:   yield [[T3]]
// CHECK-NEXT: }
// CHECK-NEXT: [[AFTER:%[0-9]+]] = tanh %arg1
// CHECK:      ^bb0(
// CHECK-NEXT:   neg %arg1
// CHECK:      } do {
// CHECK-NEXT: ^bb0(
// CHECK-NEXT:   neg %arg1
// CHECK:      return [[OUTER]], [[AFTER]]
